// `unik doctor`'s checks in a made-up host: a PATH that lacks tools or holds fake ones, statfs
// figures, a kernel cache with and without the demo's kernel, providers that fail; its route
// (a GET that changes nothing and says no secret) and the CLI's rendering.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hostChecks, LOW_FREE_BYTES, MIN_FREE_BYTES, type DiskSpace } from '../../src/core/doctor.js';
import { PREPARED_KERNELS, kernelConfigHash, kernelFragments } from '../../src/base/linux/kernel.js';
import { compilers } from '../../src/compilers/index.js';
import { createProviders } from '../../src/providers/index.js';
import type { Provider } from '../../src/providers/types.js';
import { unikPaths, type UnikPaths } from '../../src/model/paths.js';
import type { HostCheck } from '../../src/model/types.js';
import { renderChecks } from '../../src/cli/commands/doctor.js';
import { buildApp } from '../../src/daemon/app.js';
import { createCore } from '../../src/core/core.js';

const GiB = 1024 ** 3;
const scratch = mkdtempSync(join(tmpdir(), 'unik-doctor-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh home with its own (empty) kernel cache: no probe guest can boot, none is looked for elsewhere. */
function home(name: string): UnikPaths {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return { ...unikPaths(dir), kernels: join(dir, 'kernels') };
}

/** Runs fn with these environment variables set (undefined: unset), then puts them back. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

const plenty = async (): Promise<DiskSpace> => ({ freeBytes: 100 * GiB, totalBytes: 200 * GiB });
const byName = (checks: HostCheck[], name: string) => {
  const c = checks.find((x) => x.name === name);
  assert.ok(c, `no check named ${name} in ${checks.map((x) => x.name).join(', ')}`);
  return c;
};

/** A folder of fake programs: each prints its line for --version and exits 0. */
function fakeBin(name: string, programs: Record<string, string>): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (const [prog, version] of Object.entries(programs)) {
    writeFileSync(join(dir, prog), `#!/bin/sh\n[ "$1" = --version ] && echo '${version}'\nexit 0\n`);
    chmodSync(join(dir, prog), 0o755);
  }
  return dir;
}

describe('doctor checks', () => {
  test('a PATH without QEMU or tools: the host QEMU is a blocking failure with its apt-get line; each language names its package', async () => {
    const empty = fakeBin('empty-bin', {});
    const paths = home('no-tools');
    const checks = await withEnv({ PATH: empty }, () => hostChecks({ paths, providers: createProviders(paths, () => {}), space: plenty }));
    const qemu = byName(checks, 'qemu amd64');
    assert.deepEqual({ ok: qemu.ok, required: qemu.required, fix: qemu.fix }, { ok: false, required: process.arch === 'x64', fix: 'apt-get install qemu-system-x86' });
    assert.match(qemu.detail, /qemu-system-x86_64 is not installed/);
    assert.equal(byName(checks, 'qemu arm64').fix, 'apt-get install qemu-system-arm');
    assert.equal(checks.some((c) => c.name === 'accelerator'), false, 'no accelerator without a QEMU');
    const kernelTools = byName(checks, 'kernel build tools');
    assert.equal(kernelTools.required, true);
    assert.match(kernelTools.fix!, /^apt-get install make gcc flex bison bc xz-utils\b/);
    assert.equal(byName(checks, 'language go').fix, 'apt-get install golang-go');
    assert.equal(byName(checks, 'language go').required, false, 'a language is optional');
    assert.equal(byName(checks, 'language java').fix, 'apt-get install openjdk-17-jdk-headless');
    assert.equal(byName(checks, 'build sandbox').fix, 'apt-get install bubblewrap util-linux');
    assert.equal(byName(checks, 'volumes').fix, 'apt-get install e2fsprogs dosfstools mtools');
    // the daemon's own Node is found by its path, whatever PATH says
    assert.equal(byName(checks, 'language nodejs').ok, true);
    // every failure says what fixes it; no two checks share a name
    for (const c of checks) if (!c.ok) assert.ok(c.fix, `${c.name} fails without a fix`);
    assert.equal(new Set(checks.map((c) => c.name)).size, checks.length);
  });

  test('every compiler names a Debian package for each tool it runs', () => {
    for (const c of compilers) for (const t of c.hostTools) assert.match(t.pkg, /^[a-z0-9][a-z0-9.+-]+$/, `${c.language}: ${t.name}`);
  });

  test('a QEMU on PATH: found with its version; the accelerator line says why (UNIK_ACCEL=tcg, so no probe guest boots)', async () => {
    const bin = fakeBin('fake-qemu', { 'qemu-system-x86_64': 'QEMU emulator version 9.9.9 (fake)', go: 'go version go1.19 linux/amd64' });
    const paths = home('fake-qemu');
    const checks = await withEnv({ PATH: bin, UNIK_ACCEL: 'tcg' }, () => hostChecks({ paths, providers: createProviders(paths, () => {}), space: plenty }));
    if (process.arch !== 'x64') return; // the accelerator line is for the host's own architecture
    const qemu = byName(checks, 'qemu amd64');
    assert.equal(qemu.ok, true);
    assert.match(qemu.detail, new RegExp(`${bin}/qemu-system-x86_64, version 9\\.9\\.9 \\(fake\\)`));
    const accel = byName(checks, 'accelerator');
    assert.deepEqual({ ok: accel.ok, required: accel.required, detail: accel.detail }, { ok: false, required: false, detail: 'UNIK_ACCEL=tcg' });
    assert.match(accel.fix!, /without UNIK_ACCEL/);
    assert.equal(byName(checks, 'language go').ok, true);
    assert.match(byName(checks, 'language go').detail, new RegExp(`go in ${bin}`));
  });

  test('free disk from statfs: under the minimum is blocking, under the comfortable size a warning, and one line per filesystem', async () => {
    const paths = home('disk');
    const at = async (free: number) => {
      const checks = await hostChecks({ paths, providers: [], compilers: [], space: async () => ({ freeBytes: free, totalBytes: 100 * GiB }) });
      return checks.filter((c) => c.name === 'disk');
    };
    const [tight] = await at(MIN_FREE_BYTES - 1);
    assert.deepEqual({ ok: tight!.ok, required: tight!.required }, { ok: false, required: true });
    assert.match(tight!.detail, /^2\.0 GiB free of 100\.0 GiB on the filesystem of UNIK_HOME \(.*\) and the kernel cache .*at least 2\.0 GiB is needed/);
    assert.match(tight!.fix!, /unik rmu/);
    const [low] = await at(LOW_FREE_BYTES - GiB);
    assert.deepEqual({ ok: low!.ok, required: low!.required }, { ok: false, required: false });
    const [fine] = await at(LOW_FREE_BYTES);
    assert.equal(fine!.ok, true);
    // a kernel cache on another filesystem (tmpfs) gets a line of its own
    const shm = mkdtempSync('/dev/shm/unik-doctor-');
    try {
      const apart = { ...paths, kernels: join(shm, 'kernels') };
      const seen: string[] = [];
      const lines = (await hostChecks({ paths: apart, providers: [], compilers: [], space: async (p) => (seen.push(p), { freeBytes: 50 * GiB, totalBytes: 60 * GiB }) })).filter((c) => c.name === 'disk');
      assert.equal(lines.length, 2, JSON.stringify(lines));
      assert.deepEqual(seen, [paths.home, shm], 'a cache not made yet is measured on the folder that would hold it');
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });

  test("the kernel cache: what it holds, whether the demo's kernel is among them, and the command that prepares it", async () => {
    const paths = home('kernels');
    const check = async () => byName(await hostChecks({ paths, providers: [], compilers: [], space: plenty }), 'kernel cache');
    if (!byName(await hostChecks({ paths, providers: [], compilers: [], space: plenty }), 'kernel source').ok) return; // no linux-source here: nothing to key kernels by
    let c = await check();
    assert.equal(c.ok, false);
    assert.match(c.detail, /^0 kernels \(0\.0 MB\) in .*; not yet the demo's \(base\+net\)/);
    assert.match(c.fix!, new RegExp(`^UNIK_KERNEL_CACHE=${paths.kernels} node .*/dist/scripts/prepare-kernel\\.js$`));
    // the kernels set-up prepares, as ensureKernel would file them
    const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
    for (const set of PREPARED_KERNELS) {
      const dir = join(paths.kernels, kernelConfigHash(kernelFragments(arch, [...set]), arch));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, arch === 'amd64' ? 'bzImage' : 'Image.gz'), Buffer.alloc(1_500_000));
      writeFileSync(join(dir, 'fragments'), set.join('\n') + '\n');
    }
    // a build in progress is not a kernel
    mkdirSync(join(paths.kernels, '0123456789abcdef.build'), { recursive: true });
    c = await check();
    assert.deepEqual({ ok: c.ok, detail: c.detail }, { ok: true, detail: `2 kernels (3.0 MB) in ${paths.kernels}, the demo's (base+net) among them` });
  });

  test('bridged networks off: a warning (user-mode networking still works) with the way to turn them on', async () => {
    const paths = home('bridged');
    const c = byName(await withEnv({ UNIK_BRIDGED: 'off' }, () => hostChecks({ paths, providers: [], compilers: [], space: plenty })), 'bridged networks');
    assert.deepEqual({ ok: c.ok, required: c.required, fix: c.fix }, { ok: false, required: false, fix: 'start the daemon without UNIK_BRIDGED=off' });
    assert.match(c.detail, /user-mode network/);
  });

  test("a provider without checks() is one line from its info(); one whose checks throw is one failed line, not a failed doctor", async () => {
    const paths = home('providers');
    const stub = (name: string, p: Partial<Provider>): Provider => ({ name, infrastructure: name, arches: ['amd64'], info: async () => ({ name, infrastructure: name, available: true, reason: 'fine' }), ...p }) as Provider;
    const checks = await hostChecks({
      paths,
      compilers: [],
      space: plenty,
      providers: [
        stub('down', { info: async () => ({ name: 'down', infrastructure: 'x', available: false, reason: 'its daemon is not running', fix: 'start it' }) }),
        stub('up', {}),
        stub('broken', { checks: async () => { throw new Error('boom'); } }),
      ],
    });
    assert.deepEqual(byName(checks, 'provider down'), { name: 'provider down', ok: false, required: false, detail: 'its daemon is not running', fix: 'start it' });
    assert.deepEqual(byName(checks, 'provider up'), { name: 'provider up', ok: true, required: false, detail: 'fine' });
    assert.deepEqual(byName(checks, 'provider broken'), { name: 'provider broken', ok: false, required: false, detail: 'its check failed: boom' });
  });
});

describe('the CLI rendering', () => {
  test('one line a check, the fix under each problem, a summary, and every apt package at once', () => {
    const text = renderChecks([
      { Name: 'daemon', Ok: true, Required: true, Detail: '127.0.0.1:3000 answered', Fix: '' },
      { Name: 'qemu amd64', Ok: false, Required: true, Detail: 'qemu-system-x86_64 is not installed', Fix: 'apt-get install qemu-system-x86' },
      { Name: 'language go', Ok: false, Required: false, Detail: 'go is not installed', Fix: 'apt-get install golang-go' },
      { Name: 'accelerator', Ok: false, Required: false, Detail: 'UNIK_ACCEL=tcg', Fix: 'start the daemon without UNIK_ACCEL' },
    ]);
    assert.equal(
      text,
      [
        '[✓] daemon       127.0.0.1:3000 answered',
        '[✗] qemu amd64   qemu-system-x86_64 is not installed',
        '                 fix: apt-get install qemu-system-x86',
        '[!] language go  go is not installed',
        '                 fix: apt-get install golang-go',
        '[!] accelerator  UNIK_ACCEL=tcg',
        '                 fix: start the daemon without UNIK_ACCEL',
        '',
        '3 problems, 1 of them blocking (✗): unik cannot build or run until it is fixed',
        'every missing package at once: apt-get install qemu-system-x86 golang-go (scripts/setup.sh installs them all)',
        '',
      ].join('\n'),
    );
    assert.match(renderChecks([{ Name: 'a', Ok: true, Required: true, Detail: 'x', Fix: '' }]), /\nno problems found\n$/);
  });
});

describe('GET /doctor', () => {
  const paths = home('route');
  const token = 'secret-token-for-the-doctor-test-0123';
  let app: Awaited<ReturnType<typeof buildApp>>;
  let core: Awaited<ReturnType<typeof createCore>>;
  const saved = process.env.UNIK_KERNEL_CACHE;
  before(async () => {
    // an empty kernel cache of its own: no probe guest boots here
    process.env.UNIK_KERNEL_CACHE = paths.kernels;
    process.env.UNIK_DOCTOR_TEST_SECRET = 'canary-7f3a9c';
    core = await createCore({ home: paths.home, watch: false });
    app = await buildApp({ core, token });
    await app.ready();
  });
  after(async () => {
    await app.close();
    core.close();
    if (saved === undefined) delete process.env.UNIK_KERNEL_CACHE;
    else process.env.UNIK_KERNEL_CACHE = saved;
    delete process.env.UNIK_DOCTOR_TEST_SECRET;
  });
  const tree = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();

  test('200 with PascalCase checks; nothing in the home changes; no secret in the answer', async () => {
    const before = tree(paths.home);
    const res = await app.inject({ method: 'GET', url: '/doctor', headers: { host: '127.0.0.1:3000', authorization: `Bearer ${token}` } });
    assert.equal(res.statusCode, 200, res.body);
    const checks = res.json() as Record<string, unknown>[];
    assert.ok(checks.length > 10);
    for (const c of checks) {
      assert.deepEqual(Object.keys(c), ['Name', 'Ok', 'Required', 'Detail', 'Fix']);
      assert.equal(c.Ok ? c.Fix : 'checked', c.Ok ? '' : 'checked', `${String(c.Name)}: an ok check has no fix`);
    }
    assert.deepEqual(tree(paths.home), before, 'GET /doctor wrote nothing');
    assert.equal(res.body.includes(token), false);
    assert.equal(res.body.includes('canary-7f3a9c'), false);
  });

  test('it takes no input and passes the guard like every route: no token 401, a foreign page 403, other methods 404', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/doctor', headers: { host: '127.0.0.1:3000' } })).statusCode, 401);
    const page = await app.inject({ method: 'GET', url: '/doctor', headers: { host: '127.0.0.1:3000', authorization: `Bearer ${token}`, origin: 'http://evil.test' } });
    assert.equal(page.statusCode, 403);
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await app.inject({ method, url: '/doctor', headers: { host: '127.0.0.1:3000', authorization: `Bearer ${token}` }, ...(method === 'DELETE' ? {} : { payload: '{}' }) });
      assert.equal(res.statusCode, 404, `${method} /doctor`);
    }
  });
});
