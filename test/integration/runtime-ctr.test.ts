// unik-runc under a real containerd (Debian's 1.6, stock runc shim, `ctr run --runc-binary`),
// with images pushed by `unik hub push` to a local registry and pulled by `ctr`; then bad
// bundles given to unik-runc directly, as the shim would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, openSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon, ROOT, waitFor } from './harness.js';
import { Registry } from './registry.js';
import { Containerd } from './containerd.js';

const UNIK_RUNC = join(ROOT, 'bin', 'unik-runc');
const daemon = new Daemon();
const registry = new Registry();
// this node also runs arm64 unikernels, emulated (TCG): unik-runc reads that from containerd's environment
const ctrd = new Containerd({ env: { UNIK_RUNC_EMULATE: 'arm64' } });
const work = mkdtempSync(join(tmpdir(), 'unik-rt-'));
process.env.UNIK_RUNC_CACHE = join(work, 'snapshots'); // unik-runc's boot snapshots, removed with work
let goRef = '';
let exitRef = '';
let armRef = '';

/** qemu processes whose -name is unik-<id> */
function vmsOf(id: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.includes('qemu-system') && argv.includes(`unik-${id}`)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

before(async () => {
  await Promise.all([daemon.start(), registry.start(), ctrd.start()]);
  const exitApp = join(work, 'exit3');
  mkdirSync(exitApp);
  writeFileSync(join(exitApp, 'main.c'), '#include <stdio.h>\nint main(int argc, char **argv) {\n  printf("hello from a unikernel, argc=%d; exiting with 3\\n", argc);\n  return 3;\n}\n');
  for (const [name, dir, arch] of [['go-http', join(ROOT, 'examples/go-http'), 'amd64'], ['exit3', exitApp, 'amd64'], ['go-arm', join(ROOT, 'examples/go-http'), 'arm64']] as const) {
    const push = await daemon.cli(['push', name, dir, '--arch', arch], { timeoutMs: 15 * 60_000 });
    assert.equal(push.code, 0, push.stderr + push.stdout);
    const ref = `${registry.host}/unik/${name}:v1`;
    const hub = await daemon.cli(['hub', 'push', name, ref]);
    assert.equal(hub.code, 0, hub.stderr + hub.stdout);
    const pull = await ctrd.ctr(['images', 'pull', '--plain-http', '--platform', `linux/${arch}`, ref], { timeoutMs: 300_000 });
    assert.equal(pull.code, 0, pull.stderr + pull.stdout);
  }
  goRef = `${registry.host}/unik/go-http:v1`;
  exitRef = `${registry.host}/unik/exit3:v1`;
  armRef = `${registry.host}/unik/go-arm:v1`;
});

after(async () => {
  if (process.exitCode) console.error(ctrd.logs(6000));
  await ctrd.stop();
  await Promise.all([daemon.destroy(), registry.destroy()]);
  rmSync(work, { recursive: true, force: true });
});

const runArgs = () => ['--runc-binary', UNIK_RUNC, '--runc-root', ctrd.runcRoot];

test('ctr run --rm: the app output is the task stdout, its exit code is the task exit code, nothing is left', async () => {
  const r = await ctrd.ctr(['run', '--rm', ...runArgs(), exitRef, 'exit3'], { timeoutMs: 120_000 });
  assert.equal(r.code, 3, `ctr run exit status: ${r.stdout} ${r.stderr}`);
  assert.match(r.stdout, /hello from a unikernel, argc=1; exiting with 3/);
  assert.deepEqual(vmsOf('exit3'), []);
  assert.ok(!existsSync(join(ctrd.runcRoot, 'default', '.unik', 'exit3')) && !existsSync(join(ctrd.runcRoot, '.unik', 'exit3')), 'no state left');
  assert.equal((await ctrd.ctr(['containers', 'ls', '-q'])).stdout.trim(), '');
});

test('ctr run -d: the console goes to the task log; task kill stops the VM in order (143); task delete cleans up', async () => {
  const logFile = join(work, 'web.log');
  const r = await ctrd.ctr(['run', '-d', '--log-uri', `file://${logFile}`, ...runArgs(), '--env', 'KEY=from-ctr', goRef, 'web', '/app/go-http', 'one', 'two']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  await waitFor('the app to print its banner', async () => (existsSync(logFile) && /go-http listening on :8080 \(args: one two\)/.test(readFileSync(logFile, 'utf8')) ? true : undefined), 60_000);
  assert.equal(vmsOf('web').length, 1, 'one VM');
  const ls = await ctrd.ctr(['tasks', 'ls']);
  assert.match(ls.stdout, /web\s+\d+\s+RUNNING/);
  const pid = Number(/web\s+(\d+)/.exec(ls.stdout)![1]);
  assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor/main.js'), 'the task pid is the VM supervisor');

  assert.equal((await ctrd.ctr(['tasks', 'kill', 'web'])).code, 0);
  await waitFor('the task to stop', async () => (/web\s+\d+\s+STOPPED/.test((await ctrd.ctr(['tasks', 'ls'])).stdout) ? true : undefined), 30_000);
  assert.deepEqual(vmsOf('web'), [], 'the VM is gone');
  assert.match(readFileSync(logFile, 'utf8'), /app exited with status 143/);
  const del = await ctrd.ctr(['tasks', 'delete', 'web']);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout + del.stderr, /143|^$/);
  assert.equal((await ctrd.ctr(['containers', 'rm', 'web'])).code, 0);
  const leftovers = existsSync(ctrd.runcRoot) ? execFileSync('find', [ctrd.runcRoot, '-mindepth', '1', '-not', '-name', 'accel.json', '-not', '-name', '.unik', '-not', '-name', 'default'], { encoding: 'utf8' }).trim() : '';
  assert.equal(leftovers, '', 'no files left under the runtime root');
});

test('an arm64 unikernel on a node that emulates arm64 (UNIK_RUNC_EMULATE): qemu-system-aarch64 under TCG, its output and an orderly stop', async () => {
  const logFile = join(work, 'arm.log');
  const r = await ctrd.ctr(['run', '-d', '--platform', 'linux/arm64', '--log-uri', `file://${logFile}`, ...runArgs(), armRef, 'armweb', '/app/go-http', 'from', 'arm64']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  await waitFor('the arm64 app to print its banner', async () => (existsSync(logFile) && /go-http listening on :8080 \(args: from arm64\)/.test(readFileSync(logFile, 'utf8')) ? true : undefined), 120_000);
  const [vm] = vmsOf('armweb');
  const argv = readFileSync(`/proc/${vm}/cmdline`, 'utf8').split('\0');
  assert.match(argv[0]!, /qemu-system-aarch64$/);
  assert.match(argv[argv.indexOf('-accel') + 1] ?? '', /^tcg/, 'an emulated architecture is never given KVM');
  assert.equal((await ctrd.ctr(['tasks', 'kill', 'armweb'])).code, 0);
  await waitFor('the task to stop', async () => (/armweb\s+\d+\s+STOPPED/.test((await ctrd.ctr(['tasks', 'ls'])).stdout) ? true : undefined), 60_000);
  assert.deepEqual(vmsOf('armweb'), [], 'the VM is gone');
  assert.match(readFileSync(logFile, 'utf8'), /app exited with status 143/);
  assert.equal((await ctrd.ctr(['tasks', 'delete', 'armweb'])).code, 0);
  assert.equal((await ctrd.ctr(['containers', 'rm', 'armweb'])).code, 0);
});

test('ctr task kill -s SIGKILL: the monitor and QEMU die together; --memory-limit is the VM RAM', async () => {
  const r = await ctrd.ctr(['run', '-d', '--memory-limit', String(96 * 1024 * 1024), ...runArgs(), goRef, 'hard']);
  assert.equal(r.code, 0, r.stderr);
  const [vm] = await waitFor('the VM', async () => (vmsOf('hard').length === 1 ? vmsOf('hard') : undefined), 30_000);
  assert.match(readFileSync(`/proc/${vm}/cmdline`, 'utf8').split('\0').join(' '), / -m 96 /);
  assert.equal((await ctrd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'hard'])).code, 0);
  await waitFor('the task to stop', async () => (/hard\s+\d+\s+STOPPED/.test((await ctrd.ctr(['tasks', 'ls'])).stdout) ? true : undefined), 30_000);
  await waitFor('QEMU to be gone', async () => (vmsOf('hard').length === 0 ? true : undefined), 5_000);
  assert.equal((await ctrd.ctr(['tasks', 'delete', 'hard'])).code, 0);
  assert.equal((await ctrd.ctr(['containers', 'rm', 'hard'])).code, 0);
});

test('containerd restarts while a unikernel runs: the task is still RUNNING, and kill and delete still work', async () => {
  const logFile = join(work, 'survivor.log');
  const r = await ctrd.ctr(['run', '-d', '--log-uri', `file://${logFile}`, ...runArgs(), goRef, 'survivor']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor('the app to print its banner', async () => (existsSync(logFile) && /go-http listening/.test(readFileSync(logFile, 'utf8')) ? true : undefined), 60_000);
  const p = ctrd.proc!;
  const gone = new Promise((res) => p.once('exit', res));
  p.kill('SIGTERM');
  await gone;
  await ctrd.start();
  assert.match((await ctrd.ctr(['tasks', 'ls'])).stdout, /survivor\s+\d+\s+RUNNING/);
  const ps = await ctrd.ctr(['tasks', 'ps', 'survivor']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(vmsOf('survivor').length, 1);
  assert.equal((await ctrd.ctr(['tasks', 'kill', 'survivor'])).code, 0);
  await waitFor('the task to stop', async () => (/survivor\s+\d+\s+STOPPED/.test((await ctrd.ctr(['tasks', 'ls'])).stdout) ? true : undefined), 30_000);
  assert.equal((await ctrd.ctr(['tasks', 'delete', 'survivor'])).code, 0);
  assert.equal((await ctrd.ctr(['containers', 'rm', 'survivor'])).code, 0);
  assert.deepEqual(vmsOf('survivor'), []);
});

test('exec and pause are refused with a clear message', async () => {
  const r = await ctrd.ctr(['run', '-d', ...runArgs(), goRef, 'noexec']);
  assert.equal(r.code, 0, r.stderr);
  const ex = await ctrd.ctr(['tasks', 'exec', '--exec-id', 'sh1', 'noexec', '/bin/sh']);
  assert.notEqual(ex.code, 0);
  assert.match(ex.stderr, /exec is not supported for unikernels/);
  const pause = await ctrd.ctr(['tasks', 'pause', 'noexec']);
  assert.notEqual(pause.code, 0);
  assert.match(pause.stderr, /pause is not supported for unikernels/);
  await ctrd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'noexec']);
  await waitFor('the task to stop', async () => (/noexec\s+\d+\s+STOPPED/.test((await ctrd.ctr(['tasks', 'ls'])).stdout) ? true : undefined), 30_000);
  assert.equal((await ctrd.ctr(['tasks', 'delete', 'noexec'])).code, 0);
  assert.equal((await ctrd.ctr(['containers', 'rm', 'noexec'])).code, 0);
});

// ---- bad input, given to unik-runc directly as the shim calls it ----

/** A bundle with the go-http image unpacked by containerd's rules (a copy of a good image's rootfs). */
function bundleOf(name: string, mutate?: (rootfs: string) => void, process?: Record<string, unknown>): string {
  const bundle = join(work, name);
  const rootfs = join(bundle, 'rootfs');
  mkdirSync(join(rootfs, 'unik'), { recursive: true });
  const img = readdirSync(join(daemon.home, 'images'))
    .map((d) => join(daemon.home, 'images', d))
    .find((d) => JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')).name === 'exit3')!;
  for (const f of ['kernel', 'root.cpio', 'manifest.json']) cpSync(join(img, f), join(rootfs, 'unik', f));
  const argv = JSON.parse(readFileSync(join(img, 'manifest.json'), 'utf8')).argv as string[];
  mutate?.(rootfs);
  const spec = {
    ociVersion: '1.0.2',
    process: { terminal: false, args: argv, env: ['PATH=/usr/bin:/bin'], cwd: '/', ...process },
    root: { path: 'rootfs' },
    hostname: name,
    linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }] },
  };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

let runcCalls = 0;
function runc(root: string, bundle: string, args: string[]): { code: number; stdout: string; stderr: string; log: { level: string; msg: string }[] } {
  const logFile = join(bundle, 'log.json');
  // files, not pipes, for stdio: a created container's supervisor keeps them (as it keeps the
  // shim's) and its VM's console goes on writing there, so each call gets files of its own
  const call = ++runcCalls;
  const [out, err] = [join(bundle, `runc.${call}.out`), join(bundle, `runc.${call}.err`)];
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  const r = spawnSync(UNIK_RUNC, ['--root', root, '--log', logFile, '--log-format', 'json', ...args], { stdio: ['ignore', fds[0]!, fds[1]!], timeout: 120_000 });
  fds.forEach((fd) => closeSync(fd));
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; msg: string }) : [];
  return { code: r.status ?? -1, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8'), log };
}

function lastError(log: { level: string; msg: string }[]): string {
  return log.filter((l) => l.level === 'error').at(-1)?.msg ?? '';
}

const badCases: [string, (rootfs: string) => void, RegExp][] = [
  [
    'arm64',
    (r) => {
      const f = join(r, 'unik', 'manifest.json');
      writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), arch: 'aarch64' }));
    },
    /built for aarch64 \(arm64\), but this host runs amd64/,
  ],
  ['truncated-kernel', (r) => truncateSync(join(r, 'unik', 'kernel'), 100_000), /kernel \/unik\/kernel is 100000 bytes, its manifest says \d+/],
  [
    'bad-cpio',
    (r) => {
      const f = join(r, 'unik', 'root.cpio');
      const b = readFileSync(f);
      b.write('garbage!', 0);
      writeFileSync(f, b);
    },
    /\/unik\/root.cpio is not a cpio \(newc\) archive/,
  ],
  ['no-kernel', (r) => rmSync(join(r, 'unik', 'kernel')), /the kernel \/unik\/kernel is missing/],
  ['bad-manifest', (r) => writeFileSync(join(r, 'unik', 'manifest.json'), '{"argv": [tru'), /manifest.json is not valid JSON/],
];

for (const [name, mutate, message] of badCases) {
  test(`bad input: ${name} is refused by create with a clear error in the log, and leaves nothing`, () => {
    const root = join(work, `root-${name}`);
    const bundle = bundleOf(name, mutate);
    const r = runc(root, bundle, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'init.pid'), name]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(lastError(r.log), message);
    assert.match(r.stderr, message);
    assert.ok(!existsSync(join(bundle, 'init.pid')));
    assert.ok(!existsSync(join(root, '.unik', name)), 'no state left');
    assert.deepEqual(vmsOf(name), []);
  });
}

test('bad input: a kill of a container that already exited says "container not running"; delete then cleans up', async () => {
  const root = join(work, 'root-exited');
  const bundle = bundleOf('exited');
  assert.equal(runc(root, bundle, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'init.pid'), 'exited']).code, 0);
  assert.equal(runc(root, bundle, ['start', 'exited']).code, 0);
  await waitFor('the app to exit', async () => (JSON.parse(runc(root, bundle, ['state', 'exited']).stdout).status === 'stopped' ? true : undefined), 60_000);
  const recorded = JSON.parse(readFileSync(join(root, '.unik', 'exited', 'supervisor.json'), 'utf8')) as { exitCode: number; appExitCode: number; state: string };
  assert.deepEqual([recorded.state, recorded.exitCode, recorded.appExitCode], ['exited', 3, 3], 'the supervisor recorded the app exit');
  const k = runc(root, bundle, ['kill', 'exited', 'SIGTERM']);
  assert.equal(k.code, 1);
  assert.match(lastError(k.log), /container not running: exited has already exited \(exit status 3\)/);
  const s = runc(root, bundle, ['start', 'exited']);
  assert.equal(s.code, 1);
  assert.match(lastError(s.log), /cannot start a container that has stopped/);
  assert.equal(runc(root, bundle, ['delete', 'exited']).code, 0);
  assert.ok(!existsSync(join(root, '.unik', 'exited')));
  assert.deepEqual(vmsOf('exited'), []);
});

test('bad input: a spec asking for a terminal or too little memory; a duplicate id', () => {
  const root = join(work, 'root-spec');
  let bundle = bundleOf('tty', undefined, { terminal: true });
  let r = runc(root, bundle, ['create', '--bundle', bundle, 'tty']);
  assert.equal(r.code, 1);
  assert.match(lastError(r.log), /a terminal .* is not supported for unikernels/);

  bundle = bundleOf('tiny');
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.linux.resources = { memory: { limit: 8 * 1024 * 1024 } };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  r = runc(root, bundle, ['create', '--bundle', bundle, 'tiny']);
  assert.equal(r.code, 1);
  assert.match(lastError(r.log), /memory limit 8388608 bytes \(8 MB\) is too small/);

  bundle = bundleOf('dup');
  assert.equal(runc(root, bundle, ['create', '--bundle', bundle, 'dup']).code, 0);
  r = runc(root, bundle, ['create', '--bundle', bundle, 'dup']);
  assert.equal(r.code, 1);
  assert.match(lastError(r.log), /container with id exists: dup/);
  assert.equal(runc(root, bundle, ['delete', 'dup']).code, 0, 'a created container can be deleted');
  assert.deepEqual(vmsOf('dup'), []);
  assert.deepEqual(readdirSync(join(root, '.unik')).filter((f) => f !== 'accel.json'), []);
  assert.ok(statSync(root).isDirectory());
});

test('a bundle that is not a unikernel goes to runc unchanged', () => {
  const root = join(work, 'root-plain');
  const bundle = join(work, 'plain');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  execFileSync('runc', ['spec'], { cwd: bundle });
  const r = runc(root, bundle, ['create', '--bundle', bundle, 'plain']);
  assert.notEqual(r.code, 0, 'runc refuses it');
  assert.ok(!existsSync(join(root, '.unik', 'plain')));
  assert.match(lastError(r.log), /cannot allocate tty if runc will detach without setting console socket/, 'the error is runc\'s own, in the same log');
  runc(root, bundle, ['delete', '--force', 'plain']);
  assert.ok(!existsSync(join(root, 'plain')));
});

test('state, ps, features and version answer as runc does', async () => {
  const root = join(work, 'root-state');
  const bundle = bundleOf('st');
  assert.equal(runc(root, bundle, ['create', '--bundle', bundle, '--pid-file', join(bundle, 'init.pid'), 'st']).code, 0);
  const pid = Number(readFileSync(join(bundle, 'init.pid'), 'utf8'));
  const st = JSON.parse(runc(root, bundle, ['state', 'st']).stdout);
  assert.deepEqual({ id: st.id, pid: st.pid, status: st.status, bundle: st.bundle }, { id: 'st', pid, status: 'created', bundle });
  assert.deepEqual(JSON.parse(runc(root, bundle, ['ps', '--format', 'json', 'st']).stdout), [pid]);
  assert.equal(JSON.parse(runc(root, bundle, ['features']).stdout).ociVersionMax, '1.0.2');
  assert.match(runc(root, bundle, ['--version']).stdout, /^unik-runc version .*\ncommit: .*\nspec: 1\.0\.2\n$/);
  const run = runc(root, bundle, ['run', '--bundle', bundle, 'st-run']);
  assert.equal(run.code, 3, 'not supported: its own exit status');
  assert.match(lastError(run.log), /run is not supported for unikernels: run it with create and start/);
  const ex = runc(root, bundle, ['exec', '--process', '/dev/null', 'st']);
  assert.equal(ex.code, 3);
  assert.match(lastError(ex.log), /exec is not supported for unikernels/);
  assert.equal(runc(root, bundle, ['delete', 'st']).code, 0);
  await sleep(10);
  assert.equal(runc(root, bundle, ['state', 'st']).code, 1, 'gone: runc answers "does not exist"');
});
