import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpioWriter } from '../../src/base/linux/cpio.js';
import { bootConfigFrame, encodeBootConfig, parseGuestEvents, writeBootConfigCpio } from '../../src/base/linux/contract.js';
import { writeInitramfs } from '../../src/base/linux/rootfs.js';
import { checkConfig } from '../../src/base/linux/kernel.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'unik-unit-'));

test('cpio archives are read back by GNU cpio, with owners, modes and device nodes', async () => {
  const dir = tmp();
  const src = join(dir, 'payload');
  writeFileSync(src, 'x'.repeat(3_000_001));
  const w = await CpioWriter.create(join(dir, 'a.cpio'));
  await w.dir('/etc');
  await w.file('/etc/hello', Buffer.from('hi\n'), 0o640);
  await w.fileFrom('/big', src, 0o755);
  await w.symlink('/link', '/etc/hello');
  await w.charDevice('/console', 5, 1);
  const size = await w.finish();
  assert.equal(size % 4, 0);
  const listing = execFileSync('cpio', ['-itv', '--quiet', '-F', join(dir, 'a.cpio')], { encoding: 'utf8' });
  assert.match(listing, /drwxr-xr-x .* root\s+root .* etc\n/);
  assert.match(listing, /-rw-r----- .* root\s+root\s+3 .* etc\/hello/);
  assert.match(listing, /-rwxr-xr-x .* 3000001 .* big/);
  assert.match(listing, /lrwxrwxrwx .* link -> \/etc\/hello/);
  assert.match(listing, /crw------- .* 5,\s+1 .* console/);
  const out = join(dir, 'x');
  execFileSync('mkdir', ['-p', out]);
  execFileSync('cpio', ['-id', '--quiet', '-F', join(dir, 'a.cpio')], { cwd: out });
  assert.equal(readFileSync(join(out, 'etc/hello'), 'utf8'), 'hi\n');
  assert.equal(readFileSync(join(out, 'big')).length, 3_000_001);
});

test('the image root holds init, the mount points, /dev/console and the app with its parents', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'init'), 'init');
  writeFileSync(join(dir, 'app'), 'app');
  await writeInitramfs(join(dir, 'root.cpio'), join(dir, 'init'), [{ kind: 'file', path: '/app/deep/server', source: join(dir, 'app'), mode: 0o755 }], [dir]);
  const names = execFileSync('cpio', ['-it', '--quiet', '-F', join(dir, 'root.cpio')], { encoding: 'utf8' }).trim().split('\n');
  for (const n of ['dev', 'proc', 'sys', 'tmp', 'etc', 'etc/passwd', 'etc/group', 'dev/console', 'init', 'app', 'app/deep', 'app/deep/server']) assert.ok(names.includes(n), `${n} in ${names}`);
  assert.ok(names.indexOf('app/deep') < names.indexOf('app/deep/server'), 'parents come first');
  await assert.rejects(writeInitramfs(join(dir, 'bad.cpio'), join(dir, 'init'), [{ kind: 'file', path: '/app/../../etc/x', source: join(dir, 'app'), mode: 0o644 }], [dir]));
});

test('boot config records: argv, env (any size, any characters but NUL), network', async () => {
  const big = 'v'.repeat(100_000);
  const buf = encodeBootConfig({ argv: ['/app/x', 'a b', ''], env: { KEY: 'VAL', BIG: big, NL: 'one\ntwo' }, cwd: '/', hostname: 'web', time: 1700000000.7, net: { ifname: 'eth0', ip: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3' } });
  const recs = buf.toString('utf8').split('\0');
  assert.equal(recs.at(-1), '', 'every record ends with NUL');
  assert.deepEqual(recs.slice(0, 3), ['arg=/app/x', 'arg=a b', 'arg=']);
  assert.ok(recs.includes('env=KEY=VAL'));
  assert.ok(recs.includes(`env=BIG=${big}`));
  assert.ok(recs.includes('env=NL=one\ntwo'));
  assert.ok(recs.includes('time=1700000000'));
  assert.ok(recs.includes('net.ip=10.0.2.15/24'));
  assert.throws(() => encodeBootConfig({ argv: ['/x'], env: { A: 'a\0b' }, cwd: '/', hostname: 'h', time: 0 }));
  const dir = tmp();
  await writeBootConfigCpio(join(dir, 'c.cpio'), { argv: ['/x'], env: {}, cwd: '/', hostname: 'h', time: 0 });
  assert.match(execFileSync('cpio', ['-it', '--quiet', '-F', join(dir, 'c.cpio')], { encoding: 'utf8' }), /^unik\nunik\/config\n$/);
});

test('boot config over the control channel: a length line, then the records, with clock and seed', () => {
  const c = { argv: ['/app'], env: { A: 'b' }, cwd: '/', hostname: 'h', time: 1, now: 1795770000.7, seed: Buffer.from([0, 1, 254, 255]) };
  const frame = bootConfigFrame(c);
  const nl = frame.indexOf(10);
  const body = frame.subarray(nl + 1);
  assert.equal(frame.subarray(0, nl).toString(), `config ${body.length}`);
  assert.deepEqual(body, encodeBootConfig(c));
  const recs = body.toString().split('\0');
  assert.ok(recs.includes('now=1795770000'));
  assert.ok(recs.includes('seed=0001feff'));
});

test('guest events: ready, then the last exit status wins', () => {
  assert.deepEqual(parseGuestEvents(''), { ready: false, exitCode: null, waiting: false });
  assert.deepEqual(parseGuestEvents('unik:ready 21\n'), { ready: true, exitCode: null, waiting: false });
  assert.deepEqual(parseGuestEvents('unik:ready 21\nunik:exit 143\n'), { ready: true, exitCode: 143, waiting: false });
  assert.deepEqual(parseGuestEvents('unik:exit 127\n'), { ready: false, exitCode: 127, waiting: false });
  assert.deepEqual(parseGuestEvents('unik:waiting\nunik:ready 3\n'), { ready: true, exitCode: null, waiting: true });
});

test('kernel config check names fragment options that did not survive olddefconfig', () => {
  const finalConfig = 'CONFIG_64BIT=y\nCONFIG_TTY=y\n# CONFIG_PCI is not set\nCONFIG_ACPI=y\n';
  const missing = checkConfig(finalConfig, ['base']);
  assert.ok(missing.includes('CONFIG_SERIAL_8250=y'));
  assert.ok(missing.includes('CONFIG_ACPI=n'));
  assert.ok(!missing.includes('CONFIG_64BIT=y'));
  assert.ok(!missing.includes('CONFIG_PCI=n'));
});
