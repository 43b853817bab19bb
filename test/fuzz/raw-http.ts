import { connect } from 'node:net';

// A deliberately lax HTTP/1.1 client: it writes the request bytes as given (raw paths with
// "..", NUL, spaces or UTF-8, header values Node's own client would refuse), so the daemon's
// real parser and socket handling are fuzzed too, not only its routes.

export interface RawRequest {
  method: string;
  /** sent as is on the request line */
  target: string;
  headers: [string, string][];
  body?: Buffer;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** the head came, then the body was still open when the read window closed (a long poll) */
  streaming: boolean;
  /** ms until the status line arrived */
  headMs: number;
}

/**
 * Sends one request on a fresh connection. Rejects with "hang" when no status line arrives
 * within headDeadlineMs; once the head is in, reads the body for at most bodyWindowMs (long
 * polls such as wait or logs --follow legitimately stay open) and then hangs up.
 */
export function rawRequest(port: number, req: RawRequest, headDeadlineMs: number, bodyWindowMs: number): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let head: { status: number; headers: Record<string, string>; bodyStart: number; headMs: number } | undefined;
    let settled = false;
    const finish = (streaming: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(headTimer);
      clearTimeout(bodyTimer);
      socket.destroy();
      if (!head) return reject(new Error('connection closed before a status line'));
      const all = Buffer.concat(chunks).subarray(head.bodyStart);
      resolve({ status: head.status, headers: head.headers, body: decodeBody(head.headers, all), streaming, headMs: head.headMs });
    };
    const headTimer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`hang: no answer within ${headDeadlineMs} ms`));
    }, headDeadlineMs);
    let bodyTimer: NodeJS.Timeout | undefined;

    socket.on('connect', () => {
      const lines = [`${req.method} ${req.target} HTTP/1.1`, ...req.headers.map(([k, v]) => `${k}: ${v}`)];
      if (req.body && !req.headers.some(([k]) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding'))
        lines.push(`Content-Length: ${req.body.length}`);
      lines.push('Connection: close', '', '');
      socket.write(Buffer.from(lines.join('\r\n'), 'utf8'));
      if (req.body) socket.write(req.body);
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!head) {
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = parseHead(all.subarray(0, end).toString('latin1'), end + 4, Date.now() - started);
        clearTimeout(headTimer);
        bodyTimer = setTimeout(() => finish(true), bodyWindowMs);
      }
      if (head && bodyComplete(head.headers, Buffer.concat(chunks).subarray(head.bodyStart))) finish(false);
    });
    socket.on('end', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('error', (e) => {
      if (head) return finish(false);
      if (settled) return;
      settled = true;
      clearTimeout(headTimer);
      reject(e);
    });
  });
}

function parseHead(text: string, bodyStart: number, headMs: number) {
  const [statusLine = '', ...rest] = text.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const l of rest) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, bodyStart, headMs };
}

function bodyComplete(headers: Record<string, string>, body: Buffer): boolean {
  if (headers['content-length'] !== undefined) return body.length >= Number(headers['content-length']);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) return body.includes('\r\n0\r\n\r\n') || body.subarray(0, 5).toString() === '0\r\n\r\n';
  return false;
}

function decodeBody(headers: Record<string, string>, body: Buffer): Buffer {
  if (!/chunked/i.test(headers['transfer-encoding'] ?? '')) return body;
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const nl = body.indexOf('\r\n', at);
    if (nl < 0) break;
    const size = parseInt(body.subarray(at, nl).toString(), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(body.subarray(nl + 2, nl + 2 + size));
    at = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}
