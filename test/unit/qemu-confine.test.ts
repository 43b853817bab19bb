// How QEMU is confined, on this host's real QEMU (an empty `-M none` machine: no guest to boot):
// the probe, the argv, the seccomp filter and user seen in /proc, spawn=deny holding against a
// monitor command that runs a program, a QEMU bound to its parent dying with it, private dirs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuArgs, optValue } from '../../src/providers/qemu/args.js';
import { boundToParent, confinementArgs, parentBoundConfinement, privateDir, qemuConfinement, type Confinement } from '../../src/providers/qemu/confine.js';
import { Qmp } from '../../src/providers/qemu/qmp.js';

const QEMU = process.env.UNIK_QEMU || 'qemu-system-x86_64';
const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'unik-confine-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** The uid QEMU should drop to: unik-qemu if the host has it, else nobody. */
function expectedUser(): { name: string; uid: number } {
  for (const name of ['unik-qemu', 'nobody']) {
    try {
      const f = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).split(':');
      return { name, uid: Number(f[2]) };
    } catch {
      /* next */
    }
  }
  throw new Error('no unprivileged user on this host');
}

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** An empty machine with a QMP socket, confined as given; resolves once its monitor answers. */
async function emptyMachine(c: Confinement, tag: string, wrap = (cmd: string[]) => cmd): Promise<{ child: ChildProcess; qmp: Qmp; qemuPid: () => number }> {
  const sock = join(scratch, `${tag}.qmp`);
  const [cmd, ...args] = wrap([QEMU, '-name', `unik-test-${tag}`, '-M', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`, ...confinementArgs(c)]);
  const child = spawn(cmd!, args, { stdio: 'ignore' });
  const qmp = await Qmp.connect(sock, 10_000, () => child.exitCode === null && child.signalCode === null);
  return { child, qmp, qemuPid: () => qemuPids(`unik-test-${tag}`)[0]! };
}

/** QEMU processes (not their wrappers) named so. */
function qemuPids(name: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[0]!.includes('qemu-system') && argv.includes(name);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('the probe finds the full seccomp sandbox and, as root, the unprivileged user and -runas', async () => {
  const c = await qemuConfinement(QEMU);
  assert.match(c.sandbox, /^on,obsolete=deny,spawn=deny,resourcecontrol=deny,elevateprivileges=(deny|allow)$/);
  if (isRoot) {
    const u = expectedUser();
    assert.equal(c.user?.name, u.name);
    assert.equal(c.user?.uid, u.uid);
    assert.ok(c.dropArgs.join(' ') === `-runas ${u.name}` || c.dropArgs.join(' ') === `-run-with user=${u.name}`, c.dropArgs.join(' '));
    assert.match(c.summary, new RegExp(`runs as ${u.name}`));
  } else {
    assert.equal(c.user, undefined);
    assert.match(c.sandbox, /elevateprivileges=deny/, 'a QEMU that keeps its user keeps set*id denied');
  }
  assert.equal(await qemuConfinement(QEMU), c, 'probed once per binary');
});

test('every QEMU argv ends with the sandbox and the drop; option values cannot smuggle options in', async () => {
  const c = await qemuConfinement(QEMU);
  const argv = qemuArgs({ arch: 'amd64', accel: 'tcg', memoryMb: 64, kernel: '/k', initrd: '/i', name: 'unik-a,debug-threads=on', ports: [], consoleLog: '/x,y/console.log', controlSocket: '/s', controlLog: '/l', disks: [{ file: '/v,format=qcow2', serial: 's' }], confinement: c });
  assert.deepEqual(argv.slice(argv.indexOf('-sandbox'), argv.indexOf('-sandbox') + 2), ['-sandbox', c.sandbox]);
  assert.deepEqual(argv.slice(-c.dropArgs.length || argv.length), c.dropArgs.length ? c.dropArgs : []);
  assert.equal(argv[argv.indexOf('-name') + 1], 'unik-a,,debug-threads=on');
  assert.ok(argv.includes('file,id=console,path=/x,,y/console.log,append=on'));
  assert.ok(argv.includes('file=/v,,format=qcow2,format=raw,if=none,id=disk0,cache=writeback,discard=unmap'));
  assert.equal(optValue('a,b,,c'), 'a,,b,,,,c');
});

test('a confined QEMU, seen in /proc: seccomp filter mode 2, no new privileges, and as root the unprivileged uid with no capabilities', async () => {
  const c = await qemuConfinement(QEMU);
  const vm = await emptyMachine(c, 'status');
  try {
    const s = status(vm.qemuPid());
    assert.equal(s.Seccomp, '2');
    assert.equal(s.NoNewPrivs, '1');
    if (isRoot) {
      const uid = String(expectedUser().uid);
      assert.deepEqual(s.Uid!.split(/\s+/), [uid, uid, uid, uid], 'real, effective, saved and fs uid all dropped');
      assert.equal(s.CapEff, '0000000000000000');
      assert.equal(s.CapPrm, '0000000000000000');
      assert.doesNotMatch(s.Groups ?? '', /(^|\s)0(\s|$)/, 'no root group left');
    }
  } finally {
    vm.qmp.close();
    vm.child.kill('SIGKILL');
  }
});

test('spawn=deny holds: a monitor command that would run a program spawns nothing (and does without the sandbox)', async () => {
  const c = await qemuConfinement(QEMU);
  for (const confined of [false, true]) {
    const canary = join(scratch, `canary-${confined}`);
    const vm = await emptyMachine(confined ? c : { sandbox: '', dropArgs: [], summary: '' }, `spawn-${confined}`);
    const gone = new Promise((r) => vm.child.once('exit', r));
    // exec: migration forks /bin/sh; under the sandbox the fork is refused (QEMU is killed, or the command fails)
    await vm.qmp.execute('migrate', { uri: `exec:touch ${canary}` }).catch(() => undefined);
    await Promise.race([gone, sleep(1500)]);
    vm.qmp.close();
    vm.child.kill('SIGKILL');
    if (confined) assert.ok(!existsSync(canary), 'the sandboxed QEMU ran a program');
    else assert.ok(existsSync(canary), 'control: without the sandbox the same command runs it (so this test can fail)');
  }
});

test('a QEMU bound to its parent dies with it, SIGKILL included, even after it dropped to another user', async () => {
  const c = parentBoundConfinement(await qemuConfinement(QEMU));
  // the parent: a small node process that starts the bound QEMU and waits
  const sock = join(scratch, 'bound.qmp');
  const cmd = boundToParent(c, [QEMU, '-name', 'unik-test-bound', '-M', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`, ...confinementArgs(c)]);
  const parent = spawn(process.execPath, ['-e', `require('child_process').spawn(${JSON.stringify(cmd[0])}, ${JSON.stringify(cmd.slice(1))}, { stdio: 'ignore' }); setInterval(() => {}, 1000);`], { stdio: 'ignore' });
  const qmp = await Qmp.connect(sock, 10_000);
  qmp.close();
  const [pid] = qemuPids('unik-test-bound');
  assert.ok(pid, 'QEMU runs');
  if (isRoot && c.user) assert.equal(status(pid).Uid!.split(/\s+/)[1], String(c.user.uid), 'it dropped to the unprivileged user');
  parent.kill('SIGKILL');
  const until = Date.now() + 5000;
  while (qemuPids('unik-test-bound').length && Date.now() < until) await sleep(50);
  assert.deepEqual(qemuPids('unik-test-bound'), [], 'QEMU outlived its parent');
});

test('privateDir: made 0700, an existing loose one tightened, a symlink refused', async () => {
  const fresh = join(scratch, 'p', 'sock');
  await privateDir(fresh);
  assert.equal(lstatSync(fresh).mode & 0o777, 0o700);
  const loose = join(scratch, 'loose');
  mkdirSync(loose);
  chmodSync(loose, 0o777);
  await privateDir(loose);
  assert.equal(lstatSync(loose).mode & 0o777, 0o700);
  const link = join(scratch, 'link');
  symlinkSync(loose, link);
  await assert.rejects(privateDir(link), /must be a directory owned by uid/);
});
