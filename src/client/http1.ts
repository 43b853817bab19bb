// Quick calls to a plain-HTTP daemon, through node:http rather than fetch: Node loads its fetch
// (a bundled undici) at the first call, ~20 ms of CPU here, and a process that used it lingers
// ~0.1 s before it can exit, which a `unik ps` pays in full. Only for answers read whole; streams,
// uploads, patient calls and TLS stay on fetch. Failures look like fetch's, so toUnreachable and
// the messages are the same on both paths.
import { request } from 'node:http';

/** What the client reads of an answer read whole; a fetch Response has the same shape. */
export interface TextResponse {
  status: number;
  statusText: string;
  text(): Promise<string>;
}

export interface TextRequest {
  method: string;
  headers: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
}

// undici's defaults, which fetch applies to these calls: no headers, or no body data, for 300 s
const IDLE_MS = 300_000;

/** fetch's failures: TypeError('fetch failed') before the answer, TypeError('terminated') during it */
function asFetchError(err: Error, answered: boolean): Error {
  if (err.name === 'AbortError') return err;
  return new TypeError(answered ? 'terminated' : 'fetch failed', { cause: err });
}

function timeout(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export function requestText(url: URL, init: TextRequest): Promise<TextResponse> {
  return new Promise((resolve, reject) => {
    const headers = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
    let answered = false;
    const req = request(url, { method: init.method, headers, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(asFetchError(err, true)));
      res.on('aborted', () => reject(asFetchError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), true)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', text: async () => text });
      });
    });
    req.setTimeout(IDLE_MS, () =>
      req.destroy(answered ? timeout('UND_ERR_BODY_TIMEOUT', 'Body Timeout Error') : timeout('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error')),
    );
    req.on('error', (err) => reject(asFetchError(err, answered)));
    req.end(init.body);
  });
}
