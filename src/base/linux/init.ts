import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { buildFailed, unavailable } from '../../model/errors.js';
import { defaultArch, type Arch } from '../../model/arch.js';
import { execFileCollect, lastLines } from '../../util/exec.js';
import { repoRoot } from '../../util/repo.js';

const FLAGS = ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror'];

/**
 * The compiler of the init: musl for the host's own architecture; for the other one Debian's
 * cross gcc with its static glibc (Debian has no musl cross compiler), which makes a larger
 * init (650 KB against 70 KB) that works the same.
 */
const CROSS_CC: Record<Arch, { cc: string; pkg: string }> = {
  amd64: { cc: 'x86_64-linux-gnu-gcc', pkg: 'gcc-x86-64-linux-gnu' },
  arm64: { cc: 'aarch64-linux-gnu-gcc', pkg: 'gcc-aarch64-linux-gnu' },
};

/** The compiler of an architecture's init, and its Debian package. */
export function guestInitCompiler(arch: Arch): { cc: string; pkg: string } {
  return arch === defaultArch() ? { cc: 'musl-gcc', pkg: 'musl-tools' } : CROSS_CC[arch];
}

/** Compiles the guest init (static) once per source version and architecture; returns the binary's path. */
export async function ensureGuestInit(cacheDir: string, arch: Arch = 'amd64'): Promise<string> {
  const { cc, pkg } = guestInitCompiler(arch);
  const source = join(repoRoot(), 'guest', 'init', 'init.c');
  const text = await readFile(source);
  // musl builds keep the cache key they had before there were other architectures
  const hash = createHash('sha256').update(FLAGS.join(' ')).update(cc === 'musl-gcc' ? (arch === 'amd64' ? '' : ` ${arch}`) : ` ${cc}`).update(text).digest('hex').slice(0, 16);
  const out = join(cacheDir, 'init', hash, 'init');
  if (existsSync(out)) return out;
  await mkdir(join(cacheDir, 'init', hash), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await execFileCollect(cc, [...FLAGS, '-o', tmp, source]).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable(cc === 'musl-gcc' ? 'NO_MUSL' : 'NO_CROSS_COMPILER', `${cc} is not installed`, `apt-get install ${pkg} (or run \`npm run setup\`)`);
    throw e;
  });
  if (r.code !== 0) throw buildFailed('GUEST_INIT', `building the guest init failed:\n${lastLines(r.output, 20)}`);
  await rename(tmp, out);
  return out;
}
