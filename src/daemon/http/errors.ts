import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isUnikError, type ErrorKind } from '../../model/errors.js';
import type { ErrorJson } from '../../api/types.js';

/** The unik API's one kind → status table. (2016 answered 500 for "not found": not copied.) */
export const statusOf: Record<ErrorKind, number> = {
  InvalidArgument: 400,
  Unauthenticated: 401,
  NotFound: 404,
  AlreadyExists: 409,
  FailedPrecondition: 409,
  Conflict: 409,
  BuildFailed: 422,
  Unavailable: 503,
  NotImplemented: 501,
  Internal: 500,
};

export function errorBody(e: unknown): { status: number; body: ErrorJson } {
  if (isUnikError(e)) return { status: statusOf[e.kind], body: { message: e.message, code: e.code, ...(e.hint ? { hint: e.hint } : {}) } };
  const fe = e as FastifyError;
  if (fe.validation) return { status: 400, body: { message: fe.message, code: 'UNIK_ERR_BAD_REQUEST' } };
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
    return { status: fe.statusCode, body: { message: fe.message, code: `UNIK_ERR_${fe.code ?? 'BAD_REQUEST'}` } };
  return { status: 500, body: { message: `internal error: ${(e as Error).message ?? String(e)}`, code: 'UNIK_ERR_INTERNAL', hint: 'this is a bug in unik; the daemon log has the details' } };
}

export function errorHandler(e: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = errorBody(e);
  if (status >= 500) req.log.error({ err: e }, 'request failed');
  void reply.code(status).send(body);
}

/** 2016 booleans: "true" in any case is true, everything else false. */
export function bool2016(v: unknown): boolean {
  return typeof v === 'string' && v.toLowerCase() === 'true';
}
