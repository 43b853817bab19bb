import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildFailed, invalid, unavailable } from '../model/errors.js';
import type { HostTool, VolumeType } from '../model/types.js';
import { execFileCollect, lastLines } from '../util/exec.js';

// Volume disk images are plain files holding a filesystem, made without root and without
// loop devices: mkfs.ext4 -d copies a directory in, mkfs.fat + mcopy do the same for FAT.

const MiB = 1024 * 1024;

/** the programs that make volumes, and their Debian packages */
export const VOLUME_TOOLS: readonly HostTool[] = [
  { name: 'mkfs.ext4', pkg: 'e2fsprogs' },
  { name: 'mkfs.fat', pkg: 'dosfstools' },
  { name: 'mcopy', pkg: 'mtools' },
];

export interface MkfsOptions {
  file: string;
  type: VolumeType;
  sizeBytes: number;
  label: string;
  /** files to put in it */
  fromDir?: string;
}

export async function makeFilesystem(o: MkfsOptions): Promise<void> {
  const fh = await open(o.file, 'w', 0o644);
  await fh.truncate(o.sizeBytes); // sparse: only written blocks take space
  await fh.close();
  try {
    if (o.type === 'fat') await makeFat(o);
    else await makeExt(o);
  } catch (e) {
    await rm(o.file, { force: true });
    throw e;
  }
}

async function run(tool: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
  const pkg = VOLUME_TOOLS.find((t) => t.name === tool)?.pkg ?? tool;
  const r = await execFileCollect(tool, args, env ? { env: { ...process.env, ...env } } : {}).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_MKFS', `${tool} is not installed`, `apt-get install ${pkg} (or run \`npm run setup\`)`);
    throw e;
  });
  if (r.code !== 0) throw buildFailed('MKFS', `${tool} failed:\n${lastLines(r.output, 15)}`);
}

async function makeExt(o: MkfsOptions): Promise<void> {
  const args = ['-q', '-F', '-t', o.type, '-L', o.label.slice(0, 16), '-E', 'root_owner=0:0'];
  if (o.fromDir) args.push('-d', o.fromDir);
  await run('mkfs.ext4', [...args, o.file]);
}

async function makeFat(o: MkfsOptions): Promise<void> {
  if (o.sizeBytes < 33 * MiB) throw invalid('VOLUME_TOO_SMALL', 'a FAT volume needs at least 33 MB (FAT32)');
  await run('mkfs.fat', ['-F', '32', '-n', o.label.slice(0, 11).toUpperCase(), o.file]);
  if (!o.fromDir) return;
  const entries = await readdir(o.fromDir);
  if (entries.length === 0) return;
  // -s: recursive, -p: keep attributes, -Q: stop at the first error; MTOOLS_SKIP_CHECK: the
  // image is ours and has no partition table for mtools to check
  await run('mcopy', ['-s', '-p', '-Q', '-i', o.file, ...entries.map((e) => join(o.fromDir!, e)), '::/'], { MTOOLS_SKIP_CHECK: '1' });
}

/** The filesystem in an uploaded raw disk image, as a volume type; refuses what the guest cannot mount. */
export async function detectFilesystem(file: string): Promise<VolumeType> {
  const r = await execFileCollect('blkid', ['-p', '-o', 'value', '-s', 'TYPE', file]);
  const fs = r.output.trim();
  if (fs === 'ext4' || fs === 'ext3') return 'ext4';
  if (fs === 'ext2') return 'ext2';
  if (fs === 'vfat') return 'fat';
  throw invalid('BAD_RAW_VOLUME', `the raw disk image holds ${fs ? `a ${fs} filesystem` : 'no filesystem unik recognises'}`, 'upload an ext2/ext3/ext4 or FAT filesystem image (no partition table), or send the files as a tar');
}

/** Bytes the files under dir take, for sizing a volume made from them. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += 4096 + (await dirBytes(p));
    else total += Math.ceil((await stat(p)).size / 4096) * 4096 + 256;
  }
  return total;
}

/** A size that fits the data with room for the filesystem's own structures. */
export function sizeFor(dataBytes: number, type: VolumeType): number {
  const min = type === 'fat' ? 34 * MiB : 16 * MiB;
  return Math.max(min, Math.ceil((dataBytes * 1.25 + 8 * MiB) / MiB) * MiB);
}
