import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { buildFailed, unavailable } from '../../model/errors.js';
import { execFileCollect, lastLines } from '../../util/exec.js';
import { repoRoot } from '../../util/repo.js';

const FLAGS = ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror'];

/** Compiles the guest init (static, musl) once per source version; returns the binary's path. */
export async function ensureGuestInit(cacheDir: string): Promise<string> {
  const source = join(repoRoot(), 'guest', 'init', 'init.c');
  const text = await readFile(source);
  const hash = createHash('sha256').update(FLAGS.join(' ')).update(text).digest('hex').slice(0, 16);
  const out = join(cacheDir, 'init', hash, 'init');
  if (existsSync(out)) return out;
  await mkdir(join(cacheDir, 'init', hash), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await execFileCollect('musl-gcc', [...FLAGS, '-o', tmp, source]).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_MUSL', 'musl-gcc is not installed', 'apt-get install musl-tools (or run `npm run setup`)');
    throw e;
  });
  if (r.code !== 0) throw buildFailed('GUEST_INIT', `building the guest init failed:\n${lastLines(r.output, 20)}`);
  await rename(tmp, out);
  return out;
}
