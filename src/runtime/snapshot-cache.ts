// unik-runc's boot-snapshot cache, shared by every container on the node. A template holds a
// VM's memory, so it is keyed by the sha256 of the kernel and root that were booted, never by
// what the image says about itself: a bundle restores a snapshot only if its own kernel and
// root hash to that snapshot's key, and the template boots from the cache's own copies of
// exactly those bytes.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { privateDir } from '../providers/qemu/confine.js';
import { ImageError } from './image.js';

export const DEFAULT_CACHE = '/var/lib/unik-runc/snapshots';

export function cacheDir(): string {
  return process.env.UNIK_RUNC_CACHE || DEFAULT_CACHE;
}

/** A cache entry: the verified copies a template boots from, and the folder of its snapshots. */
export interface CacheEntry {
  key: string;
  dir: string;
  kernel: string;
  root: string;
}

/** sha256 of a file's bytes, streamed. */
export async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** The cache key of a kernel and a root: their digests, framed so that no two pairs collide. */
export function snapshotKey(kernelDigest: string, rootDigest: string): string {
  return createHash('sha256').update(`unik-runc boot snapshot v1\nkernel sha256:${kernelDigest}\nroot sha256:${rootDigest}\n`).digest('hex');
}

/**
 * The entry for this bundle's kernel and root, hashed now (at every create: the bundle is the
 * tenant's and may differ from any earlier one). On a miss the files are copied into the entry
 * while being hashed again, and refused if the copy is not the bytes the key was made from.
 */
export async function entryFor(kernel: string, root: string): Promise<CacheEntry> {
  const [kd, rd] = await Promise.all([fileDigest(kernel), fileDigest(root)]);
  const key = snapshotKey(kd, rd);
  const dir = join(cacheDir(), key);
  await privateDir(cacheDir());
  await privateDir(dir);
  const entry = { key, dir, kernel: join(dir, 'kernel'), root: join(dir, 'root.cpio') };
  await copyVerified(kernel, entry.kernel, kd, 'kernel');
  await copyVerified(root, entry.root, rd, 'root');
  return entry;
}

/** Copies src to dest (if dest is not there yet) while hashing it; the copy lands only if its digest is `digest`. */
async function copyVerified(src: string, dest: string, digest: string, what: string): Promise<void> {
  if (existsSync(dest)) return;
  const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const h = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(src), tee, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    const got = h.digest('hex');
    if (got !== digest) throw new ImageError(`the image's ${what} changed while it was being read (sha256 ${digest.slice(0, 12)}… then ${got.slice(0, 12)}…): refusing to cache it`);
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
}
