// --slim's inputs (the probe, --keep, the profiling init's console lines) and what a slim image
// keeps; a container image's optional Volumes; the boot config's profile record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as httpServer } from 'node:http';
import { createServer as tcpServer } from 'node:net';
import { consoleTail, parseKeep, parseOpened, parseProbe, probeOnce, probeText, slimEntries } from '../../src/core/slim.js';
import { qemuArgs } from '../../src/providers/qemu/args.js';
import { VolumeService } from '../../src/core/volumes.js';
import { encodeBootConfig } from '../../src/base/linux/contract.js';
import { Store } from '../../src/store/db.js';
import { unikPaths } from '../../src/model/paths.js';
import { isUnikError } from '../../src/model/errors.js';
import type { RootEntry } from '../../src/compilers/types.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isUnikError(e) ? e.code.replace(/^UNIK_ERR_/, '') : `not a UnikError: ${String(e)}`;
  }
  return 'no error';
};

test('probe: the app\'s own port in the guest, http or tcp; nothing that names another host', () => {
  assert.deepEqual(parseProbe('http://:80/'), { kind: 'http', port: 80, path: '/' });
  assert.deepEqual(parseProbe('http://:8080/health?full=1'), { kind: 'http', port: 8080, path: '/health?full=1' });
  assert.deepEqual(parseProbe('http://127.0.0.1:80'), { kind: 'http', port: 80, path: '/' });
  assert.deepEqual(parseProbe('tcp://:6379'), { kind: 'tcp', port: 6379 });
  assert.equal(probeText(parseProbe('http://localhost:80/x')), 'http://:80/x');
  for (const bad of ['http://10.0.0.1:80/', 'http://evil.example:80/', 'http://:0/', 'http://:65536/', 'http://:80/a b', 'http://:80/\r\nHost: x', 'ftp://:21', 'tcp://:6379/x', 'http://[::1]:80/', 'http://user@:80/', ':80', ''])
    assert.equal(code(() => parseProbe(bad)), 'BAD_PROBE', bad);
});

test('--keep: absolute paths of the image, normalised; no .., no NUL, a bounded count', () => {
  assert.deepEqual(parseKeep(['/usr/share/zoneinfo/', '/etc//x', '/']), ['/usr/share/zoneinfo', '/etc/x', '/']);
  for (const bad of ['usr/share', '/usr/../../etc/shadow', '/a/..', '/a\0b', ''])
    assert.equal(code(() => parseKeep([bad])), 'BAD_KEEP', JSON.stringify(bad));
  assert.equal(code(() => parseKeep(Array.from({ length: 257 }, (_, i) => `/k${i}`))), 'BAD_KEEP');
});

test('the profiling init\'s lines: CR LF endings, \\xNN escapes, anywhere in a line; nothing else', () => {
  const log = [
    'Linux version 6.1',
    'unik-init: profile: recording the files the app opens',
    'unik-init: opened /usr/sbin/nginx\r',
    'unik-init: opened /srv/a\\x0ab\\x5cc\r',
    'app output without a newline unik-init: opened /usr/lib/libz.so.1\r',
    'unik-init: opened relative/path',
    'unik-init: opened /usr/./lib/../lib/libc.so.6',
    '',
  ].join('\n');
  assert.deepEqual([...parseOpened(log)].sort(), ['/srv/a\nb\\c', '/usr/lib/libc.so.6', '/usr/lib/libz.so.1', '/usr/sbin/nginx']);
  // the init escapes every byte of a UTF-8 name outside ASCII: they are bytes, read back as UTF-8
  assert.deepEqual([...parseOpened('unik-init: opened /www/caf\\xc3\\xa9.html\r\n')], ['/www/café.html']);
});

test('a guest console in an error message: printable, bounded', () => {
  const t = consoleTail(`boot\n\x1b]0;owned\x07title\n${'A'.repeat(10_000)}\n`, 3);
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(t), JSON.stringify(t));
  assert.ok(t.length < 700);
});

test('the probe: an HTTP status line is the answer (a trickling body cannot hold the build); no answer fails within its limit', async () => {
  const trickle = httpServer((_, res) => {
    res.writeHead(200);
    const t = setInterval(() => res.write('x'), 500);
    res.on('close', () => clearInterval(t));
  });
  const silent = tcpServer(() => {}); // accepts, never speaks HTTP
  await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (s: { address(): unknown }) => (s.address() as { port: number }).port;
    const t0 = Date.now();
    assert.equal(await probeOnce({ kind: 'http', port: 80, path: '/' }, port(trickle)), 'HTTP 200');
    assert.ok(Date.now() - t0 < 2000);
    const t1 = Date.now();
    await assert.rejects(probeOnce({ kind: 'http', port: 80, path: '/' }, port(silent)), /no answer within 5 s/);
    assert.ok(Date.now() - t1 < 7000);
    assert.equal(await probeOnce({ kind: 'tcp', port: 1 }, port(silent)), 'connected');
  } finally {
    trickle.closeAllConnections();
    trickle.close();
    silent.close();
  }
});

test("the profiling VM's network reaches nothing: restrict=on, its forwarded port still in", () => {
  const args = qemuArgs({ arch: 'amd64', accel: 'tcg', memoryMb: 128, kernel: '/k', initrd: '/i', name: 'p', ports: [{ hostIp: '127.0.0.1', hostPort: 4000, guestPort: 80, protocol: 'tcp' }], disks: [], isolatedNet: true, controlSocket: '/c', confinement: { dropArgs: [], summary: '' } as never });
  const netdev = args[args.indexOf('-netdev') + 1]!;
  assert.match(netdev, /^user,id=net0,restrict=on,hostfwd=tcp:127\.0\.0\.1:4000-:80$/);
});

test('a slim root keeps dirs, links, /etc, the program, what was opened and --keep; counts and bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-slim-'));
  const file = (name: string, bytes: number) => {
    const p = join(dir, name);
    writeFileSync(p, Buffer.alloc(bytes));
    return p;
  };
  const entries: RootEntry[] = [
    { kind: 'dir', path: '/usr', mode: 0o755 },
    { kind: 'dir', path: '/usr/share/doc', mode: 0o755 },
    { kind: 'symlink', path: '/lib', target: 'usr/lib' },
    { kind: 'file', path: '/usr/sbin/app', source: file('app', 1000), mode: 0o755 },
    { kind: 'file', path: '/usr/lib/libc.so.6', source: file('libc', 2000), mode: 0o644 },
    { kind: 'file', path: '/usr/lib/unused.so', source: file('unused', 4000), mode: 0o644 },
    { kind: 'file', path: '/usr/share/doc/README', source: file('readme', 8000), mode: 0o644 },
    { kind: 'data', path: '/etc/app.conf', content: 'x=1\n', mode: 0o644 },
    { kind: 'file', path: '/usr/share/zoneinfo/UTC', source: file('utc', 100), mode: 0o644 },
    { kind: 'file', path: '/usr/share/zoneinfo-other', source: file('other', 50), mode: 0o644 },
  ];
  // an app's printed line naming a host file only names a path of its own image: nothing else can be kept
  const opened = new Set(['/usr/lib/libc.so.6', '/etc/shadow', '/work/host-secret']);
  const r = await slimEntries(entries, opened, ['/usr/share/zoneinfo'], '/usr/sbin/app');
  assert.deepEqual(r.entries.map((e) => e.path), ['/usr', '/usr/share/doc', '/lib', '/usr/sbin/app', '/usr/lib/libc.so.6', '/etc/app.conf', '/usr/share/zoneinfo/UTC']);
  assert.equal(r.totalFiles, 7);
  assert.equal(r.keptFiles, 4);
  assert.equal(r.totalBytes, 1000 + 2000 + 4000 + 8000 + 4 + 100 + 50);
  assert.equal(r.keptBytes, 1000 + 2000 + 4 + 100);
});

test("a container image's own Volumes may go without a volume; declared ones (unik.yaml, --mountpoint) may not", () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-slim-vol-'));
  const paths = unikPaths(home);
  mkdirSync(paths.volumes, { recursive: true });
  const volumes = new VolumeService(new Store(paths.db), paths, new Set(['qemu']));
  assert.deepEqual(volumes.resolveForRun({}, ['/var/lib/postgresql/data'], true), []);
  assert.equal(code(() => volumes.resolveForRun({}, ['/data'])), 'MOUNTPOINT_WITHOUT_VOLUME');
  // optional is not "anywhere": a volume still goes only where the image says
  assert.equal(code(() => volumes.resolveForRun({ '/etc': 'v' }, ['/var/lib/postgresql/data'], true)), code(() => volumes.resolveForRun({ '/etc': 'v' }, ['/var/lib/postgresql/data'])));
  const inst = { id: 'i'.repeat(64), name: 'db' } as Parameters<VolumeService['mountsFor']>[0];
  assert.deepEqual(volumes.mountsFor(inst, ['/var/lib/postgresql/data'], true), []);
  assert.equal(code(() => volumes.mountsFor(inst, ['/data'])), 'MOUNTPOINT_WITHOUT_VOLUME');
});

test('boot config: profile=1 only for a profiling boot', () => {
  const base = { argv: ['/app'], env: {}, cwd: '/', hostname: 'h', time: 0 };
  assert.ok(!encodeBootConfig(base).toString().includes('profile='));
  assert.ok(encodeBootConfig({ ...base, profile: true }).toString().split('\0').includes('profile=1'));
});
