import { createServer, type Server } from 'node:net';

/** A TCP server on 127.0.0.1 that counts the connections it gets (and drops them): "nothing reached the host". */
export async function countingServer(): Promise<{ port: number; connections: () => number; close: () => void }> {
  let n = 0;
  const srv: Server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as { port: number }).port, connections: () => n, close: () => srv.close() };
}
