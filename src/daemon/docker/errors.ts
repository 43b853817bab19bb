import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isUnikError } from '../../model/errors.js';
import { statusOf } from '../http/errors.js';

/** Docker's error shape: {"message"}; the CLI prints it as "Error response from daemon: …". */
export function dockerErrorHandler(e: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  let status = 500;
  let message = e.message;
  if (isUnikError(e)) {
    status = statusOf[e.kind];
    if (e.code === 'UNIK_ERR_INSTANCE_NOT_FOUND') message = `No such container: ${e.message.replace(/^no such instance: /, '')}`;
    else if (e.code === 'UNIK_ERR_IMAGE_NOT_FOUND') message = `No such image: ${e.message.replace(/^no such image: /, '')}`;
    else if (e.code === 'UNIK_ERR_VOLUME_NOT_FOUND') message = `get ${e.message.replace(/^no such volume: /, '')}: no such volume`;
    else if (e.hint) message = `${e.message} (${e.hint})`;
  } else if (e.validation || (e.statusCode && e.statusCode >= 400 && e.statusCode < 500)) {
    status = e.statusCode && e.statusCode >= 400 ? e.statusCode : 400;
  }
  if (status >= 500) req.log.error({ err: e }, 'docker request failed');
  void reply.code(status).send({ message });
}

/** Docker sends booleans as 1/0 (CLI) or true/false (dockerode). */
export function dockerBool(v: unknown): boolean {
  return v === '1' || (typeof v === 'string' && v.toLowerCase() === 'true');
}
