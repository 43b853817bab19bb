// QEMU confined under the real daemon: every VM it starts (restored from a boot snapshot, cold
// booted with a volume, restarted) runs under QEMU's seccomp sandbox and, as root, as the
// unprivileged user, read from /proc/<qemu pid>/status; its sockets are root's alone; and all
// that works today still works (HTTP, volumes, stop/start, logs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-confine-it-'));
const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
    volPort = await freePort();
    const push = await d.cli(['push', 'go', join(ROOT, 'examples/go-http')]);
    assert.equal(push.code, 0, push.stderr + push.stdout);
  },
  teardown: () => rmSync(scratch, { recursive: true, force: true }),
});
let port = 0;
let volPort = 0;
const isRoot = process.getuid?.() === 0;

function unprivilegedUser(): { name: string; uid: number } {
  for (const name of ['unik-qemu', 'nobody']) {
    try {
      const f = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).split(':');
      return { name, uid: Number(f[2]) };
    } catch {
      /* next */
    }
  }
  throw new Error('no unprivileged user');
}

/** The QEMU process of an instance (by its -name unik-NAME). */
function qemuOf(name: string): number {
  const pids = readdirSync('/proc').filter((p) => {
    if (!/^\d+$/.test(p)) return false;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return argv[0]!.includes('qemu-system') && argv.includes(`unik-${name}`);
    } catch {
      return false;
    }
  });
  assert.equal(pids.length, 1, `one QEMU for ${name}`);
  return Number(pids[0]);
}

function status(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

/** The checks every VM must pass: seccomp mode 2 with the sandbox on its command line, and the unprivileged user. */
function assertConfined(name: string): number {
  const pid = qemuOf(name);
  const s = status(pid);
  assert.equal(s.Seccomp, '2', `QEMU of ${name} runs under a seccomp filter`);
  assert.equal(s.NoNewPrivs, '1');
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  assert.match(argv[argv.indexOf('-sandbox') + 1] ?? '', /^on,obsolete=deny,spawn=deny,resourcecontrol=deny,elevateprivileges=(deny|allow)$/);
  if (isRoot) {
    const uid = String(unprivilegedUser().uid);
    assert.deepEqual(s.Uid!.split(/\s+/), [uid, uid, uid, uid], `QEMU of ${name} runs as ${unprivilegedUser().name}`);
    assert.equal(s.CapEff, '0000000000000000', 'no capabilities');
  }
  return pid;
}

/** Connects to a UNIX socket as the unprivileged user: the error code, or 'connected'. */
function connectAs(uid: number, path: string): string {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e',
    `const s = require('net').connect(process.argv[1]); s.on('connect', () => { console.log('connected'); s.destroy(); }); s.on('error', (e) => console.log(e.code));`, path], { encoding: 'utf8' });
  return r.stdout.trim();
}

test('a VM restored from its boot snapshot runs confined, answers, and the daemon says once how QEMU is confined', async () => {
  const r = await d.cli(['run', 'go', '--name', 'conf', '-p', `${port}:8080`, '--env', 'KEY=confined']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'confined');
  assertConfined('conf');
  const img = readdirSync(join(d.home, 'images'))[0]!;
  const snaps = readdirSync(join(d.home, 'images', img, 'snapshots'));
  assert.ok(snaps.some((s) => /^\d+m-(tcg|kvm)$/.test(s)), `a boot snapshot was made and used: ${snaps.join(', ')}`);
  const lines = readFileSync(join(d.home, 'daemon.log'), 'utf8').split('\n').filter((l) => /QEMU is confined/.test(l));
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /seccomp sandbox -sandbox on,obsolete=deny,spawn=deny,resourcecontrol=deny/);
  if (isRoot) assert.match(lines[0]!, new RegExp(`runs as ${unprivilegedUser().name} \\(uid ${unprivilegedUser().uid}\\)`));
});

test('the monitor and control sockets: in a 0700 directory of root, refused to another user, used by the daemon', { skip: !isRoot && 'needs root to try another user' }, async () => {
  const sockDir = join(d.home, 'sock');
  assert.equal(statSync(sockDir).mode & 0o777, 0o700);
  assert.equal(statSync(sockDir).uid, 0);
  const socks = readdirSync(sockDir).filter((f) => f.endsWith('.ctl') || f.endsWith('.qmp'));
  assert.ok(socks.length >= 2, socks.join(', '));
  const nobody = unprivilegedUser().uid;
  for (const s of socks) {
    assert.equal(statSync(join(sockDir, s)).uid, 0, `${s} was made by QEMU before it dropped root`);
    assert.equal(connectAs(nobody, join(sockDir, s)), 'EACCES', `${s} refused to uid ${nobody}`);
  }
  // the same check can pass: a socket in an open directory is reachable by that user
  const open = mkdtempSync(join(tmpdir(), 'unik-open-'));
  const srv = await import('node:net').then((n) => n.createServer().listen(join(open, 's')));
  await new Promise((r) => srv.once('listening', r));
  execFileSync('chmod', ['0777', open, join(open, 's')]);
  assert.equal(connectAs(nobody, join(open, 's')), 'connected');
  srv.close();
  rmSync(open, { recursive: true, force: true });
});

test('stop and start: the restarted VM is confined again, answers, and its log carries on', async () => {
  const before = qemuOf('conf');
  assert.equal((await d.cli(['stop', 'conf'])).code, 0);
  assert.equal((await d.cli(['start', 'conf'])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.notEqual(assertConfined('conf'), before, 'a new QEMU');
  const logs = await d.cli(['logs', 'conf']);
  assert.equal(logs.code, 0, logs.stderr);
  assert.ok((logs.stdout.match(/go-http listening/g) ?? []).length >= 2, `both runs in the log:\n${logs.stdout}`);
  assert.equal((await d.cli(['rm', '--force', 'conf'])).code, 0);
});

test('a cold boot with a volume (opened before QEMU drops root) is confined, and the app reads and writes the volume', async () => {
  const push = await d.cli(['push', 'go-vol', join(ROOT, 'examples/go-http'), '--mountpoint', '/data']);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const data = join(scratch, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'data.txt'), 'test_data');
  const cv = await d.cli(['create-volume', 'vol1', '--data', data]);
  assert.equal(cv.code, 0, cv.stderr + cv.stdout);
  const r = await d.cli(['run', 'go-vol', '--name', 'withvol', '-p', `${volPort}:8080`, '--vol', 'vol1:/data']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${volPort}/mount_test`), 'test_data');
  assertConfined('withvol');
  assert.equal(await httpUntil(`http://127.0.0.1:${volPort}/write_test?name=kept.txt&data=by-a-confined-vm`), 'written');
  assert.equal(await httpUntil(`http://127.0.0.1:${volPort}/read_test?name=kept.txt`), 'by-a-confined-vm');
  assert.equal((await d.cli(['stop', 'withvol'])).code, 0);
  await waitFor('the VM to stop', async () => ((await d.api('GET', '/instances/withvol')).json?.State === 'stopped' ? true : undefined), 30_000).catch(() => undefined);
  assert.equal((await d.cli(['rm', '--force', 'withvol'])).code, 0);
});
