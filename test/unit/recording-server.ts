// A local HTTP server for client unit tests: records every request; the test decides the answers.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** the body as UTF-8 text */
  text: string;
}

export type Reply = { status: number; body?: string; type?: string };

/** A local server recording every request; `reply` decides the answer. */
export function startServer(): Promise<{ url: string; server: http.Server; seen: Seen[]; reply: (r: (s: Seen) => Reply) => void }> {
  let replier: (s: Seen) => Reply = () => ({ status: 500 });
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), text: Buffer.concat(chunks).toString('utf8') };
      seen.push(s);
      const r = replier(s);
      res.writeHead(r.status, r.body === undefined ? {} : { 'content-type': r.type ?? 'application/json' });
      res.end(r.body);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, server, seen, reply: (r) => (replier = r) });
    });
  });
}
