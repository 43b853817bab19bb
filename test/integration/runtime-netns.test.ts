// unik-runc in a pod's network namespace, built as the CNI bridge plugin builds it (a netns, a
// veth pair whose host end is on a bridge, the pod address on eth0, a default route): the VM
// takes over eth0's traffic through a tap device and the pod IP answers. Then the same Go binary
// as an ordinary runc container in the same namespace (delegated by unik-runc), for the
// start-to-first-200 comparison.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon, ROOT, httpUntil } from './harness.js';

const UNIK_RUNC = join(ROOT, 'bin', 'unik-runc');
const daemon = new Daemon();
const work = mkdtempSync(join(tmpdir(), 'unik-rtnet-'));
process.env.UNIK_RUNC_CACHE = join(work, 'snapshots'); // unik-runc's boot snapshots, removed with work
const root = join(work, 'root');
const tag = randomBytes(3).toString('hex');
const ns = `unikrt-${tag}`;
const bridge = `unikbr${tag}`;
const vethHost = `unikvh${tag}`;
let subnet = '';
let podIp = '';
let imageDir = '';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

before(async () => {
  await daemon.start();
  const push = await daemon.cli(['push', 'go-http', join(ROOT, 'examples/go-http')]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  imageDir = join(daemon.home, 'images', readdirSync(join(daemon.home, 'images'))[0]!);

  const used = ip('-4', 'route', 'show') + ip('-4', '-o', 'addr', 'show');
  for (let i = 0; i < 100 && !subnet; i++) {
    const o = 100 + Math.floor(Math.random() * 150);
    if (!used.includes(`10.231.${o}.`)) subnet = `10.231.${o}`;
  }
  podIp = `${subnet}.2`;
  ip('netns', 'add', ns);
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  ip('link', 'add', vethHost, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ip('link', 'set', vethHost, 'master', bridge, 'up');
  ip('-n', ns, 'addr', 'add', `${podIp}/24`, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'route', 'add', 'default', 'via', `${subnet}.1`);
});

after(async () => {
  for (const id of existsSync(join(root, '.unik')) ? readdirSync(join(root, '.unik')) : []) if (id !== 'accel.json') runc(join(work, 'dummy'), ['delete', '--force', id]);
  try {
    ip('netns', 'del', ns);
  } catch {
    /* not made */
  }
  try {
    ip('link', 'del', bridge);
  } catch {
    /* not made */
  }
  await daemon.destroy();
  rmSync(work, { recursive: true, force: true });
});

function runc(bundle: string, args: string[]): { code: number; stderr: string; log: string } {
  mkdirSync(bundle, { recursive: true });
  const logFile = join(bundle, 'log.json');
  const out = openSync(join(bundle, 'console.log'), 'a');
  const r = spawnSync(UNIK_RUNC, ['--root', root, '--log', logFile, '--log-format', 'json', ...args], { stdio: ['ignore', out, out], timeout: 120_000 });
  closeSync(out);
  return { code: r.status ?? -1, stderr: existsSync(join(bundle, 'console.log')) ? readFileSync(join(bundle, 'console.log'), 'utf8') : '', log: existsSync(logFile) ? readFileSync(logFile, 'utf8') : '' };
}

interface Spec {
  process: { terminal: boolean; args: string[]; env: string[]; cwd: string };
  root: { path: string };
  linux: { namespaces: { type: string; path?: string }[]; resources?: unknown };
  [k: string]: unknown;
}

/** A bundle from `runc spec`, in the pod's network namespace. */
function bundle(name: string, rootfs: (dir: string) => void, args: string[], env: string[] = []): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  rootfs(join(dir, 'rootfs'));
  execFileSync('runc', ['spec'], { cwd: dir });
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Spec;
  spec.process = { ...spec.process, terminal: false, args, env: [...spec.process.env, ...env] };
  spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${ns}` } : n));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

const unikRootfs = (dir: string) => {
  mkdirSync(join(dir, 'unik'));
  for (const f of ['kernel', 'root.cpio', 'manifest.json']) cpSync(join(imageDir, f), join(dir, 'unik', f));
};

/** The same static Go binary as an ordinary container rootfs: /app/go-http, taken from the image's initramfs. */
const plainRootfs = (dir: string) => {
  execFileSync('sh', ['-c', '(zstd -dcq "$1" 2>/dev/null || cat "$1") | cpio -idm --quiet app/go-http', 'sh', join(imageDir, 'root.cpio')], { cwd: dir });
};

/**
 * Resolves at the first 200. A new request goes out every 20 ms without waiting for the earlier
 * ones: a SYN sent before the guest's network is up is lost, and its retransmission comes 1 s
 * later, which would blur a one-request-at-a-time probe by up to a second.
 */
function first200(url: string, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const until = Date.now() + deadlineMs;
    let done = false;
    const shoot = () => {
      if (done) return;
      if (Date.now() > until) {
        done = true;
        reject(new Error(`${url} did not answer 200 within ${deadlineMs} ms`));
        return;
      }
      fetch(url, { signal: AbortSignal.timeout(3000) }).then(
        async (r) => {
          await r.arrayBuffer().catch(() => undefined);
          if (r.status === 200 && !done) {
            done = true;
            resolve(performance.now());
          }
        },
        () => undefined,
      );
      setTimeout(shoot, 20);
    };
    shoot();
  });
}

async function startToFirst200(id: string, b: string): Promise<number> {
  assert.equal(runc(b, ['create', '--bundle', b, '--pid-file', join(b, 'init.pid'), id]).code, 0, readFileSync(join(b, 'log.json'), 'utf8'));
  const t0 = performance.now();
  const s = runc(b, ['start', id]);
  assert.equal(s.code, 0, s.log);
  const t1 = await first200(`http://${podIp}:8080/ping_test`, 60_000);
  assert.equal(await httpUntil(`http://${podIp}:8080/ping_test`), 'pong');
  return t1 - t0;
}

async function stop(id: string, b: string): Promise<void> {
  runc(b, ['kill', id, 'KILL']);
  for (let i = 0; i < 100; i++) {
    const st = spawnSync(UNIK_RUNC, ['--root', root, 'state', id], { encoding: 'utf8' });
    if (st.status !== 0 || JSON.parse(st.stdout).status === 'stopped') break;
    await sleep(50);
  }
  assert.equal(runc(b, ['delete', '--force', id]).code, 0);
}

test('the VM joins the pod network namespace: the pod IP answers, env from the spec arrives; delete removes the tap and the redirects', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${what} at ${Date.now() - t0} ms`);
  const b = bundle('pod', unikRootfs, ['/app/go-http'], ['KEY=from-the-spec']);
  const c = runc(b, ['create', '--bundle', b, '--pid-file', join(b, 'init.pid'), 'pod']);
  assert.equal(c.code, 0, c.log);
  assert.match(ip('-n', ns, 'link', 'show'), /unik0/);
  assert.match(execFileSync('tc', ['-n', ns, 'filter', 'show', 'dev', 'eth0', 'ingress'], { encoding: 'utf8' }), /Redirect to device unik0/);
  mark('created');
  assert.equal(runc(b, ['start', 'pod']).code, 0);
  assert.equal(await httpUntil(`http://${podIp}:8080/ping_test`, 60_000), 'pong');
  mark('pong');
  assert.equal(await httpUntil(`http://${podIp}:8080/env_test`), 'from-the-spec');
  const mac = /link\/ether ([0-9a-f:]+)/.exec(ip('-n', ns, 'link', 'show', 'eth0'))![1];
  assert.ok(readFileSync(join(root, '.unik', 'pod', 'launch.json'), 'utf8').includes(`mac=${mac}`), 'the VM NIC has the pod interface MAC');

  assert.equal(runc(b, ['kill', 'pod', 'TERM']).code, 0);
  await sleep(100);
  for (let i = 0; i < 100 && JSON.parse(spawnSync(UNIK_RUNC, ['--root', root, 'state', 'pod'], { encoding: 'utf8' }).stdout).status !== 'stopped'; i++) await sleep(100);
  mark('stopped');
  assert.match(readFileSync(join(b, 'console.log'), 'utf8'), /app exited with status 143/);
  assert.equal(runc(b, ['delete', 'pod']).code, 0);
  assert.doesNotMatch(ip('-n', ns, 'link', 'show'), /unik0/);
  assert.doesNotMatch(execFileSync('tc', ['-n', ns, 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' }), /ingress/);
  assert.ok(!existsSync(join(root, '.unik', 'pod')));
});

test('start to first HTTP 200: the unikernel vs the same Go binary under runc (delegated by unik-runc), median of 5', async (t) => {
  const unik: number[] = [];
  const plain: number[] = [];
  const ub = bundle('bench-unik', unikRootfs, ['/app/go-http']);
  const pb = bundle('bench-runc', plainRootfs, ['/app/go-http']);
  for (let i = 0; i < 5; i++) {
    unik.push(await startToFirst200(`u${i}`, ub));
    await stop(`u${i}`, ub);
    plain.push(await startToFirst200(`r${i}`, pb));
    assert.ok(existsSync(join(root, `r${i}`)), 'runc keeps the delegated container in its own state dir');
    await stop(`r${i}`, pb);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const accel = JSON.parse(readFileSync(join(root, '.unik', 'accel.json'), 'utf8')).accel;
  const line = `start→first 200: unikernel (${accel}) median ${median(unik).toFixed(0)} ms [${unik.map((x) => x.toFixed(0)).join(', ')}]; runc median ${median(plain).toFixed(0)} ms [${plain.map((x) => x.toFixed(0)).join(', ')}]`;
  t.diagnostic(line);
  console.log(line);
  writeFileSync(join(tmpdir(), 'unik-runtime-start-to-200.txt'), line + '\n');
  assert.equal(readdirSync(join(root, '.unik')).filter((f) => f !== 'accel.json').length, 0);
});
