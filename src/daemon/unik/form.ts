import type { FastifyRequest } from 'fastify';
import { invalid, isUnikError } from '../../model/errors.js';
import { readUpload } from '../http/upload.js';

/** What the multipart parser (busboy) throws, as plain Errors, for a form that is not well-formed. */
const MALFORMED = /^(Multipart: Boundary not found|Boundary required|Unexpected end of multipart data|\w+ terminated early due to unexpected end of multipart data|The needle cannot)/;

/**
 * readUpload, with a malformed form answered as the client's mistake (400) rather than a 500:
 * a missing, empty or over-long boundary, or a body cut short.
 */
export async function readForm(req: FastifyRequest, tmpDir: string, required: true): Promise<{ fields: Record<string, string>; tarball: string }>;
export async function readForm(req: FastifyRequest, tmpDir: string, required: false): Promise<{ fields: Record<string, string>; tarball?: string }>;
export async function readForm(req: FastifyRequest, tmpDir: string, required: boolean): Promise<{ fields: Record<string, string>; tarball?: string }> {
  try {
    return required ? await readUpload(req, tmpDir, true) : await readUpload(req, tmpDir, false);
  } catch (e) {
    if (!isUnikError(e) && e instanceof Error && MALFORMED.test(e.message))
      throw invalid('BAD_MULTIPART', `the multipart/form-data body is malformed: ${e.message}`, 'send multipart/form-data with a boundary (1-70 characters) and the .tar.gz in the field "tarfile"', e);
    throw e;
  }
}
