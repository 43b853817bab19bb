// A small, closed set of error kinds. Callers test the kind, never the message; each API
// dialect has exactly one kind → status table (src/daemon/http/errors.ts).

export type ErrorKind =
  | 'InvalidArgument'
  | 'Unauthenticated'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Conflict'
  | 'BuildFailed'
  | 'Unavailable'
  | 'NotImplemented'
  | 'Internal';

export class UnikError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** stable code, e.g. UNIK_ERR_IMAGE_NOT_FOUND */
    readonly code: string,
    message: string,
    /** what the user can do about it */
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UnikError';
  }
}

const make =
  (kind: ErrorKind) =>
  (code: string, message: string, hint?: string, cause?: unknown): UnikError =>
    new UnikError(kind, `UNIK_ERR_${code}`, message, hint, cause === undefined ? undefined : { cause });

export const invalid = make('InvalidArgument');
export const unauthenticated = make('Unauthenticated');
export const notFound = make('NotFound');
export const alreadyExists = make('AlreadyExists');
export const failedPrecondition = make('FailedPrecondition');
export const conflict = make('Conflict');
export const buildFailed = make('BuildFailed');
export const unavailable = make('Unavailable');
export const notImplemented = make('NotImplemented');
export const internal = make('Internal');

export function isUnikError(e: unknown): e is UnikError {
  return e instanceof UnikError;
}
