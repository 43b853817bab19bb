// `unik doctor`: what the daemon's host has and lacks to build and run unikernels, each problem
// with the command that fixes it. It only looks (PATH, /usr/src, the kernel cache, statfs) and
// asks the providers; it installs, builds and writes nothing. The one effect it may have is the
// QEMU provider's: the accelerator probe the first run would make anyway, kept as its choice.

import { existsSync } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { KERNEL_BUILD_TOOLS, KERNEL_SOURCE_PACKAGE, PREPARED_KERNELS, cachedKernel, cachedKernels, crossCompiler, findKernelSource, kernelFragments } from '../base/linux/kernel.js';
import { guestInitCompiler } from '../base/linux/init.js';
import { compilers as registry } from '../compilers/index.js';
import type { Compiler } from '../compilers/types.js';
import { ARCHES, defaultArch } from '../model/arch.js';
import type { UnikPaths } from '../model/paths.js';
import type { HostCheck, HostTool } from '../model/types.js';
import { bridgedBlocker } from '../network/host.js';
import type { Provider } from '../providers/types.js';
import { which } from '../util/exec.js';
import { repoRoot } from '../util/repo.js';
import { BUILD_USER, SANDBOX_TOOLS, buildUser } from '../util/sandbox.js';
import { addSystemUserCommand } from '../util/system-user.js';
import { VOLUME_TOOLS } from '../volumes/mkfs.js';

const GiB = 1024 ** 3;
/** Below this much free space unik cannot work: a kernel build alone unpacks 1.4 GB of source. */
export const MIN_FREE_BYTES = 2 * GiB;
/** Below this much, a warning: a few kernels and container images fill it. */
export const LOW_FREE_BYTES = 10 * GiB;

export interface DiskSpace {
  freeBytes: number;
  totalBytes: number;
}

export interface DoctorOptions {
  paths: UnikPaths;
  providers: readonly Provider[];
  /** default: the compiler registry */
  compilers?: readonly Compiler[];
  /** the space on the filesystem that holds a path; default statfs (tests give their own figures) */
  space?: (path: string) => Promise<DiskSpace>;
}

/** Every check, in the order a person reads them: run, build (kernel, image, languages), network, disk. */
export async function hostChecks(o: DoctorOptions): Promise<HostCheck[]> {
  const source = kernelSource();
  const init = guestInitCompiler(defaultArch());
  return [
    ...(await providerChecks(o.providers)),
    source,
    tools('kernel build tools', KERNEL_BUILD_TOOLS, true, 'kernels cannot be built'),
    ...ARCHES.filter((a) => a !== defaultArch()).map((a) => tools(`${a} kernels`, [crossCompiler(a)], false, `${a} images cannot be built here (their kernels are cross-compiled)`)),
    kernelCache(o.paths, source.ok),
    tools('image tools', [{ name: init.cc, pkg: init.pkg }, { name: 'zstd', pkg: 'zstd' }], true, 'no image can be built (each holds the guest init, compiled here, and a zstd-compressed root)'),
    buildSandbox(),
    ...(o.compilers ?? registry).map((c) => tools(`language ${c.language}`, c.hostTools, false, `${c.language} apps cannot be built`)),
    tools('volumes', VOLUME_TOOLS, false, 'volumes cannot be made'),
    bridgedNetworks(),
    ...(await disk(o.paths, o.space ?? statfsSpace)),
  ];
}

/** A provider's own checks, or one line from its info(); a provider whose checks fail is one failed line, not a failed doctor. */
async function providerChecks(providers: readonly Provider[]): Promise<HostCheck[]> {
  const lists = await Promise.all(
    providers.map(async (p): Promise<HostCheck[]> => {
      try {
        if (p.checks) return await p.checks();
        const i = await p.info();
        return [{ name: `provider ${p.name}`, ok: i.available, required: false, detail: i.reason, ...(!i.available && i.fix ? { fix: i.fix } : {}) }];
      } catch (e) {
        return [{ name: `provider ${p.name}`, ok: false, required: false, detail: `its check failed: ${(e as Error).message}` }];
      }
    }),
  );
  return lists.flat();
}

function kernelSource(): HostCheck {
  const name = 'kernel source';
  try {
    return { name, ok: true, required: true, detail: findKernelSource() };
  } catch {
    return { name, ok: false, required: true, detail: `/usr/src/${KERNEL_SOURCE_PACKAGE}.tar.xz is missing: kernels cannot be built`, fix: aptInstall([KERNEL_SOURCE_PACKAGE]) };
  }
}

/** What the kernel cache holds, and whether the kernels set-up prepares (the demo's first) are among them. */
function kernelCache(paths: UnikPaths, sourceOk: boolean): HostCheck {
  const name = 'kernel cache';
  const all = cachedKernels(paths.kernels);
  const held = `${all.length} kernel${all.length === 1 ? '' : 's'} (${(all.reduce((n, k) => n + k.sizeBytes, 0) / 1e6).toFixed(1)} MB) in ${paths.kernels}`;
  // a kernel's cache key covers the source it was built from: without the source none can be named
  if (!sourceOk) return { name, ok: false, required: false, detail: `${held}; which are current cannot be told without the kernel source`, fix: aptInstall([KERNEL_SOURCE_PACKAGE]) };
  const arch = defaultArch();
  const label = (set: readonly string[], n: number) => `${n === 0 ? "the demo's" : 'the one for apps with volumes'} (${set.join('+')})`;
  const missing = PREPARED_KERNELS.map(label).filter((_, n) => !cachedKernel(paths.kernels, kernelFragments(arch, [...PREPARED_KERNELS[n]!]), arch));
  if (missing.length === 0) return { name, ok: true, required: false, detail: `${held}, ${label(PREPARED_KERNELS[0]!, 0)} among them` };
  return {
    name,
    ok: false,
    required: false,
    detail: `${held}; not yet ${missing.join(', nor ')}: the first push that needs one builds it (3-4 minutes, once)`,
    fix: prepareKernelsCommand(paths),
  };
}

/** scripts/prepare-kernel.ts, compiled, for this kernel cache. */
function prepareKernelsCommand(paths: UnikPaths): string {
  const own = paths.kernels === join(homedir(), '.unik', 'kernels') ? '' : `UNIK_KERNEL_CACHE=${paths.kernels} `;
  return `${own}node ${join(repoRoot(), 'dist', 'scripts', 'prepare-kernel.js')}`;
}

function buildSandbox(): HostCheck {
  const check = tools('build sandbox', SANDBOX_TOOLS, true, 'no upload can be built (uploaded code is only ever built inside the sandbox)');
  if (!check.ok || process.getuid?.() !== 0) return check;
  const user = buildUser();
  if (user.name === BUILD_USER) return { ...check, detail: `${check.detail}; builds run as ${BUILD_USER} (uid ${user.uid})` };
  return { ...check, ok: false, required: false, detail: `${check.detail}; builds run as ${user.name}, shared with other programs (there is no ${BUILD_USER} user)`, fix: addSystemUserCommand(BUILD_USER) };
}

function bridgedNetworks(): HostCheck {
  const name = 'bridged networks';
  const blocker = bridgedBlocker();
  if (blocker) return { name, ok: false, required: false, detail: `${blocker.why}: instances get QEMU's user-mode network (ports published with -p, no address of their own)`, fix: blocker.fix };
  return { name, ok: true, required: false, detail: 'the daemon can make bridges, taps and NAT rules (root, ip, nft, /dev/net/tun)' };
}

/** One line per filesystem that holds UNIK_HOME or the kernel cache. */
async function disk(paths: UnikPaths, space: (path: string) => Promise<DiskSpace>): Promise<HostCheck[]> {
  const places = new Map<number, { at: string; holds: string[] }>();
  for (const [what, path] of [['UNIK_HOME', paths.home], ['the kernel cache', paths.kernels]] as const) {
    const at = existingAncestor(path);
    const dev = (await stat(at)).dev;
    const place = places.get(dev) ?? { at, holds: [] };
    place.holds.push(`${what} (${path})`);
    places.set(dev, place);
  }
  const out: HostCheck[] = [];
  for (const { at, holds } of places.values()) {
    const { freeBytes, totalBytes } = await space(at);
    const detail = `${gib(freeBytes)} free of ${gib(totalBytes)} on the filesystem of ${holds.join(' and ')}`;
    const fix = `make room there (unik images, then unik rmu IMAGE…), or start the daemon with UNIK_HOME${holds.length > 1 ? '' : ' or UNIK_KERNEL_CACHE'} on a larger disk`;
    if (freeBytes < MIN_FREE_BYTES) out.push({ name: 'disk', ok: false, required: true, detail: `${detail}: at least ${gib(MIN_FREE_BYTES)} is needed (a kernel build unpacks 1.4 GB)`, fix });
    else if (freeBytes < LOW_FREE_BYTES) out.push({ name: 'disk', ok: false, required: false, detail: `${detail}: low (${gib(LOW_FREE_BYTES)} is comfortable)`, fix });
    else out.push({ name: 'disk', ok: true, required: true, detail });
  }
  return out;
}

async function statfsSpace(path: string): Promise<DiskSpace> {
  const s = await statfs(path);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

/** The path, or its nearest parent that exists (a home not made yet is made on that filesystem). */
function existingAncestor(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(1)} GiB`;
}

/** Are these programs (or files) all there? Found: where; missing: which, what that costs, and the apt-get line. */
function tools(name: string, wanted: readonly HostTool[], required: boolean, cost: string): HostCheck {
  const found = wanted.map((t) => ({ t, at: which(t.name) }));
  const missing = found.filter((f) => !f.at).map((f) => f.t);
  if (missing.length === 0) return { name, ok: true, required, detail: byFolder(found.map((f) => f.at!)) };
  const names = missing.map((t) => basename(t.name));
  const list = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
  return { name, ok: false, required, detail: `${list} ${names.length === 1 ? 'is' : 'are'} not installed: ${cost}`, fix: aptInstall(missing.map((t) => t.pkg)) };
}

/** "make, gcc in /usr/bin; gelf.h in /usr/include" */
function byFolder(paths: string[]): string {
  const dirs = new Map<string, string[]>();
  for (const p of paths) dirs.set(dirname(p), [...(dirs.get(dirname(p)) ?? []), basename(p)]);
  return [...dirs].map(([d, names]) => `${names.join(', ')} in ${d}`).join('; ');
}

function aptInstall(pkgs: string[]): string {
  return `apt-get install ${[...new Set(pkgs)].join(' ')}`;
}
