import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { buildFailed, invalid, unavailable } from '../../model/errors.js';
import type { HostTool, ProgressFn } from '../../model/types.js';
import { execFileCollect, lastLines, onPath } from '../../util/exec.js';
import { repoRoot } from '../../util/repo.js';
import { defaultArch, type Arch } from '../../model/arch.js';
import { lockCache } from '../../util/cache-lock.js';

// Kernels are built from Debian's linux-source package: `make tinyconfig`, then the repo's
// fragments (kernel/<name>.config) merged on top. The result is cached under
// <kernels>/<config hash>/ and never rebuilt; a lock keeps two builders from racing.

/** Bump when the way a kernel is built changes, so old cache entries are not reused. */
const BUILDER_VERSION = '1';
/** Lines `make` printed for the base+net build; used only to show a percentage. */
const EXPECTED_BUILD_LINES = 1400;

export interface Kernel {
  file: string;
  configHash: string;
  fragments: string[];
  sizeBytes: number;
  arch: Arch;
  /** device trees built with it (a board's: the Raspberry Pi's), by file name */
  dtbs: Record<string, string>;
}

/** Boards whose firmware needs the kernel's device tree beside it: built with the kernel. */
const FRAGMENT_DTBS: Record<string, string[]> = { rpi: ['broadcom/bcm2837-rpi-3-b.dtb'] };

function dtbsOf(fragments: string[]): string[] {
  return fragments.flatMap((f) => FRAGMENT_DTBS[f] ?? []);
}

/**
 * How each architecture's kernel is built from the one source: arm64 is cross-built with
 * Debian's gcc-aarch64-linux-gnu into a gzipped Image (arm64 kernels do not decompress
 * themselves; QEMU and the Raspberry Pi's firmware do). `arm64` is a fragment on top of
 * `base`; the base options that exist only on x86 are named so they are not reported missing.
 */
const ARCH_BUILD: Record<Arch, { kernelArch: string; cross: { prefix: string; pkg: string }; target: string; output: string; file: string; fragments: string[]; x86Only: string[] }> = {
  amd64: { kernelArch: 'x86', cross: { prefix: 'x86_64-linux-gnu-', pkg: 'gcc-x86-64-linux-gnu' }, target: 'bzImage', output: 'arch/x86/boot/bzImage', file: 'bzImage', fragments: [], x86Only: [] },
  arm64: {
    kernelArch: 'arm64',
    cross: { prefix: 'aarch64-linux-gnu-', pkg: 'gcc-aarch64-linux-gnu' },
    target: 'Image.gz',
    output: 'arch/arm64/boot/Image.gz',
    file: 'Image.gz',
    fragments: ['arm64'],
    x86Only: ['CONFIG_HYPERVISOR_GUEST', 'CONFIG_KVM_GUEST', 'CONFIG_PVH', 'CONFIG_PHYSICAL_START', 'CONFIG_KERNEL_ZSTD'],
  },
};

/** The fragments an image's kernel is built from: base, the architecture's, then the rest in order. */
export function kernelFragments(arch: Arch, wanted: string[]): string[] {
  return [...new Set(['base', ...ARCH_BUILD[arch].fragments, ...wanted])];
}

export function fragmentPath(name: string): string {
  if (!/^[a-z0-9-]+$/.test(name)) throw invalid('BAD_KERNEL_FRAGMENT', `bad kernel fragment name ${name}`);
  const p = join(repoRoot(), 'kernel', `${name}.config`);
  if (!existsSync(p)) throw invalid('UNKNOWN_KERNEL_FRAGMENT', `no kernel fragment kernel/${name}.config`);
  return p;
}

/** Debian's package of the kernel source every kernel is built from */
export const KERNEL_SOURCE_PACKAGE = 'linux-source-6.1';

/** What a kernel build runs (make, the host's compiler, Kconfig's parsers) and the headers it compiles host programs against. */
export const KERNEL_BUILD_TOOLS: readonly HostTool[] = [
  { name: 'make', pkg: 'make' },
  { name: 'gcc', pkg: 'gcc' },
  { name: 'flex', pkg: 'flex' },
  { name: 'bison', pkg: 'bison' },
  { name: 'bc', pkg: 'bc' },
  { name: 'xz', pkg: 'xz-utils' },
  { name: '/usr/include/gelf.h', pkg: 'libelf-dev' },
  { name: '/usr/include/openssl/ssl.h', pkg: 'libssl-dev' },
];

/** The compiler that builds an architecture's kernel on a host of another one. */
export function crossCompiler(arch: Arch): HostTool {
  const { prefix, pkg } = ARCH_BUILD[arch].cross;
  return { name: `${prefix}gcc`, pkg };
}

/**
 * The kernels set-up builds ahead (scripts/prepare-kernel.ts), by fragments: an app's without
 * volumes (the demo's: examples/go-http) and with them (src/compilers + src/core/images.ts).
 */
export const PREPARED_KERNELS: readonly (readonly string[])[] = [
  ['base', 'net'],
  ['base', 'net', 'block', 'ext4', 'fat'],
];

export function findKernelSource(): string {
  const dir = '/usr/src';
  const tarballs = existsSync(dir) ? readdirSync(dir).filter((f) => /^linux-source-6\.1\.tar\.xz$/.test(f)) : [];
  if (tarballs.length === 0)
    throw unavailable('NO_KERNEL_SOURCE', `the kernel source is not installed (/usr/src/${KERNEL_SOURCE_PACKAGE}.tar.xz)`, `install it: apt-get install ${KERNEL_SOURCE_PACKAGE} (or run \`npm run setup\`)`);
  return join(dir, tarballs[0]!);
}

/** The cache key: the source release, the fragments' text, and how we build (amd64 kernels keep their keys from before arm64). */
export function kernelConfigHash(fragments: string[], arch: Arch = 'amd64', source = findKernelSource()): string {
  const h = createHash('sha256');
  h.update(`builder ${BUILDER_VERSION}\n`);
  if (arch !== 'amd64') h.update(`arch ${arch}\n`);
  const st = statSync(source);
  h.update(`source ${source} ${st.size}\n`);
  for (const f of fragments) h.update(`fragment ${f}\n${readFileSync(fragmentPath(f), 'utf8')}\n`);
  return h.digest('hex').slice(0, 16);
}

export function cachedKernel(kernelsDir: string, fragments: string[], arch: Arch = 'amd64'): Kernel | undefined {
  const configHash = kernelConfigHash(fragments, arch);
  const file = join(kernelsDir, configHash, ARCH_BUILD[arch].file);
  if (!existsSync(file)) return undefined;
  const dtbs = Object.fromEntries(dtbsOf(fragments).map((d) => [basename(d), join(kernelsDir, configHash, basename(d))]));
  return { file, configHash, fragments, sizeBytes: statSync(file).size, arch, dtbs };
}

/** A kernel in the cache, whatever its fragments. */
export interface CachedKernel {
  configHash: string;
  arch: Arch;
  file: string;
  sizeBytes: number;
  fragments: string[];
}

/** Every kernel the cache holds (finished builds only: a build in progress has another folder name). */
export function cachedKernels(kernelsDir: string): CachedKernel[] {
  let names: string[];
  try {
    names = readdirSync(kernelsDir).filter((n) => /^[0-9a-f]{16}$/.test(n));
  } catch {
    return [];
  }
  const out: CachedKernel[] = [];
  for (const configHash of names) {
    for (const arch of Object.keys(ARCH_BUILD) as Arch[]) {
      const file = join(kernelsDir, configHash, ARCH_BUILD[arch].file);
      if (!existsSync(file)) continue;
      let fragments: string[] = [];
      try {
        fragments = readFileSync(join(kernelsDir, configHash, 'fragments'), 'utf8').split('\n').filter(Boolean);
      } catch {
        // an entry from before the fragments were recorded
      }
      out.push({ configHash, arch, file, sizeBytes: statSync(file).size, fragments });
    }
  }
  return out;
}

/** Returns the kernel for these fragments, building it once if it is not cached. */
export async function ensureKernel(kernelsDir: string, fragments: string[], progress: ProgressFn = () => {}, arch: Arch = 'amd64'): Promise<Kernel> {
  const hit = cachedKernel(kernelsDir, fragments, arch);
  if (hit) return hit;
  const configHash = kernelConfigHash(fragments, arch);
  await mkdir(kernelsDir, { recursive: true });
  const release = await lockCache(join(kernelsDir, configHash), progress, 'kernel', `another build of kernel ${configHash}`);
  try {
    const again = cachedKernel(kernelsDir, fragments, arch);
    if (again) return again;
    const src = await ensureSource(kernelsDir, progress);
    await build(kernelsDir, src, configHash, fragments, arch, progress);
    return cachedKernel(kernelsDir, fragments, arch)!;
  } finally {
    await release();
  }
}

/** Unpacks the kernel source once, shared by every config (builds run out of tree). */
async function ensureSource(kernelsDir: string, progress: ProgressFn): Promise<string> {
  const tarball = findKernelSource();
  const dest = join(kernelsDir, 'src', 'linux-source-6.1');
  const done = join(dest, '.unik-unpacked');
  if (existsSync(done)) return dest;
  await mkdir(join(kernelsDir, 'src'), { recursive: true });
  const release = await lockCache(join(kernelsDir, 'src'), progress, 'kernel', 'the kernel source to unpack');
  try {
    if (existsSync(done)) return dest;
    progress({ step: 'kernel', message: `unpacking ${tarball}` });
    const tmp = join(kernelsDir, 'src', `.unpack-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const r = await execFileCollect('tar', ['-xJf', tarball, '-C', tmp]);
    if (r.code !== 0) throw buildFailed('KERNEL_SOURCE', `unpacking ${tarball} failed`, undefined, lastLines(r.output, 20));
    await rm(dest, { recursive: true, force: true });
    await rename(join(tmp, 'linux-source-6.1'), dest);
    await rm(tmp, { recursive: true, force: true });
    await writeFile(done, tarball + '\n');
    return dest;
  } finally {
    await release();
  }
}

async function build(kernelsDir: string, src: string, configHash: string, fragments: string[], arch: Arch, progress: ProgressFn): Promise<void> {
  const how = ARCH_BUILD[arch];
  // the host's own compiler for its own architecture, Debian's cross compiler for the other
  const cross = arch !== defaultArch();
  const make = cross ? [`ARCH=${how.kernelArch}`, `CROSS_COMPILE=${how.cross.prefix}`] : [];
  const out = join(kernelsDir, `${configHash}.build`);
  const logLines: string[] = [];
  const run = async (step: string, file: string, args: string[], onLine?: (l: string) => void) => {
    const r = await execFileCollect(file, args, { cwd: src, onLine: (l) => { logLines.push(l); onLine?.(l); } }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw unavailable('NO_KERNEL_TOOLS', `${file} is not installed`, 'run `npm run setup`');
      throw e;
    });
    if (r.code !== 0) {
      await writeFile(join(kernelsDir, `${configHash}.failed.log`), logLines.join('\n'));
      throw buildFailed('KERNEL_BUILD', `kernel ${step} failed:\n${lastLines(r.output, 30)}`, `full log: ${join(kernelsDir, `${configHash}.failed.log`)}`);
    }
  };
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  if (cross && !onPath(`${how.cross.prefix}gcc`))
    throw unavailable('NO_CROSS_COMPILER', `building an ${arch} kernel on this host needs ${how.cross.prefix}gcc, which is not installed`, `apt-get install ${how.cross.pkg} (or run \`npm run setup\`)`);
  progress({ step: 'kernel', message: `configuring ${arch} kernel ${configHash} (tinyconfig + ${fragments.join(', ')})` });
  await run('tinyconfig', 'make', [...make, `O=${out}`, 'tinyconfig']);
  await run('config merge', 'env', [...make, 'bash', 'scripts/kconfig/merge_config.sh', '-m', '-O', out, join(out, '.config'), ...fragments.map(fragmentPath)]);
  await run('olddefconfig', 'make', [...make, `O=${out}`, 'olddefconfig']);
  const missing = checkConfig(await readFile(join(out, '.config'), 'utf8'), fragments).filter((o) => !how.x86Only.includes(o.split('=')[0]!));
  if (missing.length) progress({ step: 'kernel', message: `warning: options not applied (their dependencies are off): ${missing.join(' ')}` });

  const jobs = String(Math.max(1, availableParallelism()));
  let lines = 0;
  let shown = -1;
  const began = Date.now();
  progress({ step: 'kernel', message: `building ${arch} kernel ${configHash} with ${jobs} jobs (once; cached afterwards; 3-4 min on 2 cores)`, percent: 0 });
  await run('build', 'make', [...make, `O=${out}`, `-j${jobs}`, how.target, ...dtbsOf(fragments)], () => {
    const pct = Math.min(99, Math.floor((++lines / EXPECTED_BUILD_LINES) * 100));
    if (pct !== shown && pct % 2 === 0) {
      shown = pct;
      progress({ step: 'kernel', message: `building kernel ${configHash}${buildEta(Date.now() - began, pct)}`, percent: pct });
    }
  });

  const stage = join(kernelsDir, `${configHash}.tmp`);
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage);
  await cp(join(out, how.output), join(stage, how.file));
  for (const d of dtbsOf(fragments)) await cp(join(out, 'arch', how.kernelArch, 'boot', 'dts', d), join(stage, basename(d)));
  await cp(join(out, '.config'), join(stage, 'config'));
  await writeFile(join(stage, 'build.log'), logLines.join('\n'));
  await writeFile(join(stage, 'fragments'), fragments.join('\n') + '\n');
  await rename(stage, join(kernelsDir, configHash));
  await rm(out, { recursive: true, force: true });
  progress({ step: 'kernel', message: `kernel ${configHash} built`, percent: 100 });
}

/** ", about 2 min left": the time so far, scaled by the share of the build's lines seen (from 10%, when the rate has settled). */
export function buildEta(elapsedMs: number, percent: number): string {
  if (percent < 10 || percent >= 99) return '';
  const leftS = Math.round(((elapsedMs / percent) * (100 - percent)) / 1000);
  return leftS >= 90 ? `, about ${Math.round(leftS / 60)} min left` : `, about ${Math.max(5, Math.round(leftS / 5) * 5)} s left`;
}

/** Names the fragment options that did not end up in the final config. */
export function checkConfig(finalConfig: string, fragments: string[]): string[] {
  const have = new Map<string, string>();
  for (const line of finalConfig.split('\n')) {
    const on = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (on) have.set(on[1]!, on[2]!);
  }
  // a later fragment overrides an earlier one (pc turns on the PCI that base turns off), as in merge_config
  const wanted = new Map<string, string>();
  for (const f of fragments) {
    for (const line of readFileSync(fragmentPath(f), 'utf8').split('\n')) {
      const m = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
      if (m) wanted.set(m[1]!, m[2]!);
    }
  }
  const missing: string[] = [];
  for (const [key, want] of wanted) {
    const got = have.get(key);
    if (want === 'n' ? got !== undefined && got !== 'n' : got !== want) missing.push(`${key}=${want}`);
  }
  return missing;
}
