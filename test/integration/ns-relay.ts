// Runs inside a test's network namespace (netns.ts): listens on a UNIX socket, which the test
// outside can reach, and relays each connection to the "HOST PORT" named on its first line.
import { createServer, connect } from 'node:net';
import { rmSync } from 'node:fs';

const path = process.argv[2];
// without a socket path (e.g. picked up by the test runner) it does nothing
if (path) {
  rmSync(path, { force: true });
  createServer((client) => {
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > 300) client.destroy();
        return;
      }
      client.off('data', onData);
      client.pause();
      const [host, port] = head.subarray(0, nl).toString().trim().split(' ');
      const upstream = connect({ host: host!, port: Number(port) });
      const rest = head.subarray(nl + 1);
      upstream.once('connect', () => {
        if (rest.length) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      for (const s of [client, upstream]) s.on('error', () => (client.destroy(), upstream.destroy()));
    };
    client.on('data', onData);
    client.on('error', () => undefined);
  }).listen(path);
}
