// The dashboard's calls to the daemon: same origin, JSON, the API token (when the daemon has
// one) from this tab's sessionStorage as a Bearer header. Never in a URL, never in a cookie.
import type { ErrorJson } from '../api/types.js';

const TOKEN_KEY = 'unik.token';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An error answer of the API: its status and its {message, code, hint}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorJson,
  ) {
    super(body.message);
  }
}

let unauthorized = () => {};
/** What to do when the daemon answers 401 (the page shows the token prompt). */
export function onUnauthorized(f: () => void): void {
  unauthorized = f;
}

export interface CallInit {
  method?: string;
  /** sent as JSON */
  json?: unknown;
  /** sent as is (a FormData upload) */
  body?: BodyInit;
  accept?: string;
  signal?: AbortSignal;
}

/** One API call; an answer other than 2xx is thrown as an ApiError. */
export async function call(path: string, init: CallInit = {}): Promise<Response> {
  const headers = new Headers({ accept: init.accept ?? 'application/json' });
  const t = token();
  if (t) headers.set('authorization', `Bearer ${t}`);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
    cache: 'no-store',
    credentials: 'omit',
    ...(init.signal ? { signal: init.signal } : {}),
  });
  if (res.ok) return res;
  const text = await res.text();
  let body: ErrorJson;
  try {
    body = JSON.parse(text) as ErrorJson;
  } catch {
    body = { message: text || res.statusText, code: '' };
  }
  if (res.status === 401) unauthorized();
  throw new ApiError(res.status, body);
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await (await call(path, signal ? { signal } : {})).json()) as T;
}

/** A path segment: names and ids go into URLs encoded. */
export const seg = (s: string): string => encodeURIComponent(s);

/** The answer's body as text, chunk by chunk, as it arrives. */
export async function* textChunks(res: Response): AsyncGenerator<string> {
  if (!res.body) return;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const s = decoder.decode(value, { stream: true });
      if (s) yield s;
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    reader.releaseLock();
  }
}

/** The answer's body as JSON lines (NDJSON), each parsed as it arrives. */
export async function* jsonLines(res: Response): AsyncGenerator<unknown> {
  let buf = '';
  for await (const chunk of textChunks(res)) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (buf.trim()) yield JSON.parse(buf);
}

/** An error as one line for the page: the daemon's message, and its hint when it gave one. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) return e.body.hint ? `${e.body.message} (${e.body.hint})` : e.body.message;
  return e instanceof Error ? e.message : String(e);
}
