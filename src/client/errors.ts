// Errors the client throws, so callers can tell "the daemon said no" from "no daemon".
import type { ErrorJson } from '../api/types.js';

/** The daemon answered, but not with the status the call expects. */
export class UnikApiError extends Error {
  override readonly name = 'UnikApiError';
  readonly status: number;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(status: number, body: ErrorJson) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.hint = body.hint;
  }
}

/** The daemon could not be reached at all (or dropped the connection). */
export class DaemonUnreachableError extends Error {
  override readonly name = 'DaemonUnreachableError';
  readonly baseUrl: string;
  readonly reason: string;
  /** The system/undici error code behind it, e.g. ECONNREFUSED. */
  readonly causeCode: string | undefined;

  constructor(baseUrl: string, reason: string, causeCode?: string, options?: { cause?: unknown }) {
    super(
      `cannot reach the unik daemon at ${baseUrl} (${reason}): start it with "unik daemon", ` +
        `or point the CLI at another with --host HOST:PORT, UNIK_HOST or "unik target"`,
      options,
    );
    this.baseUrl = baseUrl;
    this.reason = reason;
    this.causeCode = causeCode;
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'connection closed by the daemon',
  UND_ERR_CLOSED: 'connection closed',
};

function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects fail with an AggregateError whose members carry the code.
  const inner = (e as { errors?: unknown }).errors;
  return Array.isArray(inner) ? errorCode(inner[0]) : undefined;
}

/**
 * undici reports network failures as `TypeError('fetch failed')` (or 'terminated' mid-body)
 * with the real reason in `cause`. Returns the mapped error, or undefined if `err` is not one.
 */
export function toUnreachable(baseUrl: string, err: unknown): DaemonUnreachableError | undefined {
  if (!(err instanceof TypeError)) return undefined;
  const cause = (err as { cause?: unknown }).cause;
  const code = errorCode(cause);
  if (code !== undefined) {
    return new DaemonUnreachableError(baseUrl, REASONS[code] ?? code, code, { cause: err });
  }
  if (err.message === 'fetch failed' || err.message === 'terminated') {
    const detail = cause instanceof Error && cause.message ? cause.message : err.message;
    return new DaemonUnreachableError(baseUrl, detail, undefined, { cause: err });
  }
  return undefined;
}
