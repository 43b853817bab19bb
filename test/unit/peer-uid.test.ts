// Loopback connections are told apart by the uid that owns their client end (/proc/net/tcp):
// the daemon closes those of the accounts guests' QEMU and builds run as.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildApp } from '../../src/daemon/app.js';
import { createCore } from '../../src/core/core.js';
import { loopbackPeerUid } from '../../src/daemon/http/peer-uid.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

/** curl as a given uid (setpriv), or as ourselves; resolves with curl's exit code and output. */
function curl(url: string, uid?: number): Promise<{ code: number; out: string }> {
  const argv = uid === undefined ? ['curl', '-s', '-m', '5', url] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'curl', '-s', '-m', '5', url];
  return new Promise((resolve) => execFile(argv[0]!, argv.slice(1), (err, out) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out })));
}

test('the owner of a loopback connection is read from the socket table', { skip: !asRoot && 'needs root to connect as another user' }, async () => {
  const seen: (number | undefined)[] = [];
  const srv = createServer((s: Socket) => {
    seen.push(loopbackPeerUid(s));
    s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/`;
  await curl(url);
  await curl(url, NOBODY);
  srv.close();
  assert.deepEqual(seen, [0, NOBODY]);
});

test('the daemon closes loopback connections of refused accounts before reading a byte', { skip: !asRoot && 'needs root' }, async () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-peer-'));
  const core = await createCore({ home, watch: false });
  const app = await buildApp({ core, refusePeerUids: [NOBODY] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/available_providers`;
  try {
    const mine = await curl(url);
    assert.equal(mine.code, 0);
    assert.match(mine.out, /qemu/);
    const theirs = await curl(url, NOBODY);
    assert.notEqual(theirs.code, 0, `served to a refused account: ${theirs.out}`);
    assert.equal(theirs.out, '');
  } finally {
    await app.close();
    core.close();
    rmSync(home, { recursive: true, force: true });
  }
});
