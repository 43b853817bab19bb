import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Core } from '../../core/core.js';
import { streamLogs, waitFor } from './streams.js';

/**
 * `docker run` without -d attaches with an HTTP upgrade (a hijacked connection): answer 101,
 * then stream the console, framed, until the instance exits. Input is not supported (no TTY).
 */
export function handleAttach(core: Core, req: IncomingMessage, socket: Duplex): boolean {
  const url = new URL(req.url ?? '/', 'http://unik');
  const m = /^(?:\/v\d+(?:\.\d+)?)?\/containers\/([^/]+)\/attach$/.exec(url.pathname);
  if (!m || req.method !== 'POST') return false;
  let id: string;
  try {
    id = core.instances.get(decodeURIComponent(m[1]!)).id;
  } catch (e) {
    const body = JSON.stringify({ message: `No such container: ${m[1]}` });
    socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
    return true;
  }
  socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => (closed = true));
  socket.on('data', () => {}); // stdin is not passed to unikernels
  // `docker run -i` half-closes its side before it calls start: give it a grace period, then a
  // client that hung up before the instance started is let go (its socket would stay forever)
  let endedAt: number | undefined;
  socket.on('end', () => (endedAt ??= Date.now()));
  const gone = () => closed || (endedAt !== undefined && Date.now() - endedAt > 5000);
  const logs = url.searchParams.get('logs');
  const withHistory = logs === '1' || logs === 'true';
  (async () => {
    // the CLI attaches before it starts the instance: note where the log ends now, wait for
    // the start, then follow (with logs=1, the earlier output too)
    const fromEnd = !withHistory && core.instances.list().find((x) => x.id === id)?.status.state !== 'created';
    await waitUntilStarted(core, id, gone);
    if (core.instances.list().find((x) => x.id === id)?.status.state === 'created') return void socket.destroy();
    if (!closed) await streamLogs(core, id, socket, { follow: true, timestamps: false, fromEnd }, () => closed);
    await waitFor(core, id, 'not-running');
    socket.end();
  })().catch(() => socket.destroy());
  return true;
}

async function waitUntilStarted(core: Core, id: string, closed: () => boolean): Promise<void> {
  for (;;) {
    const i = core.instances.list().find((x) => x.id === id);
    if (!i || i.status.state !== 'created' || closed()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
