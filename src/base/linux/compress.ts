import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { buildFailed, unavailable } from '../../model/errors.js';
import { execFileCollect, lastLines } from '../../util/exec.js';

// The image root is stored as a zstd-compressed cpio, which the kernel unpacks (CONFIG_RD_ZSTD).
// Small roots (a Go or C app) get the strongest level; big runtimes (Node, Java) a fast one,
// because level 19 on 100 MB takes most of a minute. The window stays at 1 MiB: the kernel's
// decompressor allocates it, and a small VM has little to spare while it boots. Results are
// cached by the hash of the cpio, so a warm build does not compress again.

const STRONG_BELOW = 32 * 1024 * 1024;

/** Compresses `file` in place; returns its new size. */
export async function compressInitramfs(file: string, cacheDir: string): Promise<number> {
  const { size } = await stat(file);
  const level = size < STRONG_BELOW ? ['-19'] : ['-6', '-T0'];
  const hash = createHash('sha256').update(`v2 ${level.join(' ')}`);
  await pipeline(createReadStream(file), hash);
  const cached = join(cacheDir, 'zstd', `${hash.digest('hex').slice(0, 32)}.cpio.zst`);
  if (!existsSync(cached)) {
    await mkdir(join(cacheDir, 'zstd'), { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    const r = await execFileCollect('zstd', ['-q', '-f', ...level, '--zstd=wlog=20', '-o', tmp, file]).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw unavailable('NO_ZSTD', 'zstd is not installed', 'apt-get install zstd (or run `npm run setup`)');
      throw e;
    });
    if (r.code !== 0) {
      await rm(tmp, { force: true });
      throw buildFailed('ROOT_COMPRESS', `compressing the image root failed:\n${lastLines(r.output, 10)}`);
    }
    await rename(tmp, cached);
  }
  await copyFile(cached, file);
  return (await stat(file)).size;
}
