import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import { invalid } from '../../model/errors.js';
import { newId } from '../../core/ids.js';

/**
 * Reads a 2016 multipart upload: the file field "tarfile" goes to a temp file (streamed, never
 * held in memory), the other fields are collected. Returns tarball undefined when there is no
 * body and the file is optional.
 */
export async function readUpload(req: FastifyRequest, tmpDir: string, required: true): Promise<{ fields: Record<string, string>; tarball: string }>;
export async function readUpload(req: FastifyRequest, tmpDir: string, required: false): Promise<{ fields: Record<string, string>; tarball?: string }>;
export async function readUpload(req: FastifyRequest, tmpDir: string, required: boolean): Promise<{ fields: Record<string, string>; tarball?: string }> {
  if (!req.isMultipart()) {
    if (required) throw invalid('NOT_MULTIPART', 'this call takes a multipart/form-data upload', 'send a .tar.gz in the form field "tarfile"');
    return { fields: {} };
  }
  await mkdir(tmpDir, { recursive: true });
  const tarball = join(tmpDir, `upload-${newId().slice(0, 16)}`);
  const fields: Record<string, string> = {};
  let gotFile = false;
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'tarfile' || gotFile) {
          part.file.resume();
          continue;
        }
        await pipeline(part.file, createWriteStream(tarball));
        if (part.file.truncated) throw invalid('UPLOAD_TOO_LARGE', 'the uploaded tarfile is larger than the daemon accepts');
        gotFile = true;
      } else if (typeof part.value === 'string') {
        fields[part.fieldname] = part.value;
      }
    }
    if (!gotFile) throw invalid('NO_TARFILE', 'the upload has no "tarfile" field', 'send a .tar.gz in the form field "tarfile"');
  } catch (e) {
    await rm(tarball, { force: true });
    throw e;
  }
  return { fields, tarball };
}
