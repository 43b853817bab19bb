// unik-runc against hostile bundles, called as containerd's shim calls it: a bundle that copies
// another tenant's manifest.json byte for byte must boot its own kernel and root, never the
// other tenant's boot snapshot; manifests with bad fields and image files that lead out of the
// rootfs are refused with a clear JSON error before anything is read or started; and the VMs
// it does start are confined (seccomp, unprivileged user) and die with their monitor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suiteDaemon, ROOT, waitFor } from './harness.js';
import { fileDigest, snapshotKey } from '../../src/runtime/snapshot-cache.js';

const UNIK_RUNC = join(ROOT, 'bin', 'unik-runc');
const work = mkdtempSync(join(tmpdir(), 'unik-rt-hostile-'));
const cache = join(work, 'snapshots');
process.env.UNIK_RUNC_CACHE = cache;
after(() => rmSync(work, { recursive: true, force: true }));

/** Two tenants' apps: the same program path (/app/app), different bytes and output. */
const d = suiteDaemon({
  setup: async (dm) => {
    for (const t of ['A', 'B']) {
      const dir = join(work, `src-${t}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'main.c'), `#include <stdio.h>\nint main(void) {\n  printf("I am tenant ${t}\\n");\n  return 0;\n}\n`);
      const push = await dm.cli(['push', `tenant-${t.toLowerCase()}`, dir]);
      assert.equal(push.code, 0, push.stderr + push.stdout);
    }
  },
});

function imageDir(name: string): string {
  return readdirSync(join(d.home, 'images'))
    .map((x) => join(d.home, 'images', x))
    .find((x) => JSON.parse(readFileSync(join(x, 'manifest.json'), 'utf8')).name === name)!;
}

/** A bundle holding an image's kernel, its root (or `root`) and its manifest.json (or `manifest`). */
function bundle(name: string, image: string, opts: { root?: Buffer; manifest?: Buffer; mutate?: (unik: string) => void } = {}): string {
  const b = join(work, name);
  const unik = join(b, 'rootfs', 'unik');
  mkdirSync(unik, { recursive: true });
  cpSync(join(imageDir(image), 'kernel'), join(unik, 'kernel'));
  if (opts.root) writeFileSync(join(unik, 'root.cpio'), opts.root);
  else cpSync(join(imageDir(image), 'root.cpio'), join(unik, 'root.cpio'));
  if (opts.manifest) writeFileSync(join(unik, 'manifest.json'), opts.manifest);
  else cpSync(join(imageDir(image), 'manifest.json'), join(unik, 'manifest.json'));
  opts.mutate?.(unik);
  const spec = { ociVersion: '1.0.2', process: { terminal: false, cwd: '/' }, root: { path: 'rootfs' }, hostname: name, linux: { namespaces: [{ type: 'pid' }, { type: 'network' }] } };
  writeFileSync(join(b, 'config.json'), JSON.stringify(spec));
  return b;
}

interface RuncResult {
  code: number;
  stdout: string;
  stderr: string;
  log: { level: string; msg: string }[];
  logText: string;
}

/** unik-runc as the shim runs it: --log FILE --log-format json; stdio in files the monitor keeps. */
function runc(root: string, b: string, args: string[], tag = args[0]!): RuncResult {
  const logFile = join(b, 'log.json');
  const [out, err] = [join(b, `${tag}.out`), join(b, `${tag}.err`)];
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  const r = spawnSync(UNIK_RUNC, ['--root', root, '--log', logFile, '--log-format', 'json', ...args], { stdio: ['ignore', fds[0]!, fds[1]!], timeout: 180_000 });
  fds.forEach((fd) => closeSync(fd));
  const logText = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  const log = logText.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; msg: string });
  return { code: r.status ?? -1, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8'), log, logText };
}

/** QEMU processes (not their wrappers) named unik-ID. */
function vmsOf(id: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[0]!.includes('qemu-system') && argv.includes(`unik-${id}`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** create, start, wait for the app to exit; the console (create's stdout) and the create log. */
async function runToExit(root: string, b: string, id: string): Promise<{ console: string; created: string }> {
  const c = runc(root, b, ['create', '--bundle', b, '--pid-file', join(b, 'init.pid'), id]);
  assert.equal(c.code, 0, c.stderr + c.logText);
  assert.equal(runc(root, b, ['start', id]).code, 0);
  await waitFor(`${id} to exit`, async () => (JSON.parse(runc(root, b, ['state', id]).stdout).status === 'stopped' ? true : undefined), 90_000);
  assert.equal(runc(root, b, ['delete', id]).code, 0);
  assert.deepEqual(vmsOf(id), []);
  return { console: readFileSync(join(b, 'create.out'), 'utf8'), created: c.log.find((l) => / created unikernel VM /.test(l.msg))?.msg ?? '' };
}

function cacheEntries(): string[] {
  return existsSync(cache) ? readdirSync(cache).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort() : [];
}

/**
 * The two tenants' roots as plain cpio archives of one size (the kernel skips NUL padding after
 * an archive), and one manifest.json that fits both byte for byte: what a tenant who copies
 * another's manifest and pads its root to the same size ships.
 */
function lookalikes(): { rootA: Buffer; rootB: Buffer; manifest: Buffer } {
  const plain = (image: string) => execFileSync('zstd', ['-d', '-c', join(imageDir(image), 'root.cpio')], { maxBuffer: 1 << 26 });
  const [a, b] = [plain('tenant-a'), plain('tenant-b')];
  const size = Math.max(a.length, b.length);
  assert.ok(size - Math.min(a.length, b.length) < 512, 'roots of nearly one size');
  const pad = (r: Buffer) => Buffer.concat([r, Buffer.alloc(size - r.length)]);
  const m = JSON.parse(readFileSync(join(imageDir('tenant-a'), 'manifest.json'), 'utf8'));
  m.root.sizeBytes = size;
  return { rootA: pad(a), rootB: pad(b), manifest: Buffer.from(JSON.stringify(m)) };
}

test("a bundle with another tenant's manifest.json, byte for byte, boots its own kernel and root, never the other's snapshot", async () => {
  const root = join(work, 'root-tenants');
  const { rootA, rootB, manifest } = lookalikes();
  const a1 = bundle('a1', 'tenant-a', { root: rootA, manifest });
  const first = await runToExit(root, a1, 'a1');
  assert.match(first.console, /I am tenant A/);
  // the snapshot path is really taken (so what follows could restore the wrong one)
  const a2 = bundle('a2', 'tenant-a', { root: rootA, manifest });
  const second = await runToExit(root, a2, 'a2');
  assert.match(second.created, /restored from a boot snapshot/);
  assert.match(second.console, /I am tenant A/);

  // tenant B: its own root, tenant A's manifest.json (same argv /app/app, same name, same sizes)
  const b = bundle('b', 'tenant-b', { root: rootB, manifest });
  assert.deepEqual(readFileSync(join(b, 'rootfs/unik/manifest.json')), readFileSync(join(a1, 'rootfs/unik/manifest.json')), 'byte-identical manifests');
  assert.notDeepEqual(readFileSync(join(b, 'rootfs/unik/root.cpio')), readFileSync(join(a1, 'rootfs/unik/root.cpio')));
  const run = await runToExit(root, b, 'b');
  assert.match(run.console, /I am tenant B/, `B printed: ${run.console}`);
  assert.doesNotMatch(run.console, /tenant A/, "B restored A's VM memory");
  // one cache entry per kernel+root, named by their digests, each with its own template
  const keyA = snapshotKey(await fileDigest(join(a1, 'rootfs/unik/kernel')), await fileDigest(join(a1, 'rootfs/unik/root.cpio')));
  const keyB = snapshotKey(await fileDigest(join(b, 'rootfs/unik/kernel')), await fileDigest(join(b, 'rootfs/unik/root.cpio')));
  assert.deepEqual(cacheEntries(), [keyA, keyB].sort());
  for (const k of [keyA, keyB]) assert.ok(readdirSync(join(cache, k)).some((s) => /^\d+m-(tcg|kvm)$/.test(s)), `a template in ${k}`);
});

const SECRET = 'TOP-SECRET-HOST-BYTES-7f3a91';

const hostile: [string, (unik: string) => void, RegExp][] = [
  ['nul-argv', (u) => patchManifest(u, { argv: ['/app/app', `x\u0000${SECRET}`] }), /field "argv\[1\]" contains a NUL byte/],
  ['env-object', (u) => patchManifest(u, { env: { A: { nested: true } } }), /field "env.A" must be a string, not object/],
  ['argv-number', (u) => patchManifest(u, { argv: [42] }), /field "argv\[0\]" must be a string, not number/],
  ['name-newline', (u) => patchManifest(u, { name: 'x\nlevel=info' }), /field "name" contains control characters/],
  ['cwd-dotdot', (u) => patchManifest(u, { cwd: '/app/../../etc' }), /field "cwd" must not contain "\.\." segments/],
  ['memory-string', (u) => patchManifest(u, { defaultMemoryMb: '99999999' }), /field "defaultMemoryMb" must be a whole number of MB/],
  ['huge-manifest', (u) => writeFileSync(join(u, 'manifest.json'), `{"pad":"${'x'.repeat(2 << 20)}"}`), /manifest.json is \d+ bytes, more than the 1048576/],
  [
    'root-symlink-out',
    (u) => {
      // a real, bootable cpio with a secret in it, outside the rootfs: it must not be read
      const outside = join(work, 'host-secret');
      mkdirSync(join(outside, 'tree'), { recursive: true });
      writeFileSync(join(outside, 'tree', 'secret.txt'), SECRET);
      execFileSync('sh', ['-c', 'cd tree && echo secret.txt | cpio -o -H newc > ../secret.cpio 2>/dev/null'], { cwd: outside });
      rmSync(join(u, 'root.cpio'));
      symlinkSync(join(outside, 'secret.cpio'), join(u, 'root.cpio'));
    },
    /\/unik\/root.cpio leads outside the container's rootfs/,
  ],
];

function patchManifest(unik: string, change: Record<string, unknown>): void {
  const f = join(unik, 'manifest.json');
  writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), ...change }));
}

for (const [name, mutate, message] of hostile) {
  test(`hostile bundle ${name}: refused by create with a clear JSON error; nothing cached, started or leaked`, () => {
    const root = join(work, `root-${name}`);
    const before = cacheEntries();
    const b = bundle(name, 'tenant-a', { mutate });
    const r = runc(root, b, ['create', '--bundle', b, '--pid-file', join(b, 'init.pid'), name]);
    assert.equal(r.code, 1, r.stderr);
    const errors = r.log.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1, r.logText);
    assert.match(errors[0]!.msg, message);
    assert.match(r.stderr, message);
    assert.ok(!existsSync(join(b, 'init.pid')));
    assert.ok(!existsSync(join(root, '.unik', name)), 'no state left');
    assert.deepEqual(cacheEntries(), before, 'nothing cached');
    assert.deepEqual(vmsOf(name), []);
    assert.ok(!r.logText.includes(SECRET) && !r.stderr.includes(SECRET), 'the secret is not in the log');
    const cached = cacheEntries().map((k) => join(cache, k));
    for (const dir of cached) for (const f of readdirSync(dir)) if (f === 'root.cpio') assert.ok(!readFileSync(join(dir, f)).includes(SECRET), 'the secret is not in the cache');
  });
}

test('a unik-runc VM runs under seccomp as the unprivileged user, and dies with its monitor (SIGKILL)', async () => {
  const root = join(work, 'root-confined');
  const b = bundle('conf', 'tenant-a');
  const c = runc(root, b, ['create', '--bundle', b, '--pid-file', join(b, 'init.pid'), 'conf']);
  assert.equal(c.code, 0, c.stderr + c.logText);
  const [vm] = vmsOf('conf');
  assert.ok(vm, 'QEMU runs (paused until start)');
  const status = readFileSync(`/proc/${vm}/status`, 'utf8');
  assert.match(status, /^Seccomp:\s+2$/m);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('sh', ['-c', 'getent passwd unik-qemu || getent passwd nobody'], { encoding: 'utf8' }).split(':')[2]);
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
  }
  assert.match(c.log.find((l) => / created unikernel VM /.test(l.msg))?.msg ?? '', /QEMU under seccomp/);
  const monitor = Number(readFileSync(join(b, 'init.pid'), 'utf8'));
  process.kill(monitor, 'SIGKILL');
  const until = Date.now() + 5000;
  while (vmsOf('conf').length && Date.now() < until) await sleep(50);
  assert.deepEqual(vmsOf('conf'), [], 'QEMU outlived its monitor');
  assert.equal(runc(root, b, ['delete', 'conf']).code, 0);
});
