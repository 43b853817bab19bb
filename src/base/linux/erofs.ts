import { constants } from 'node:fs';
import { chmod, lchown, lstat, mkdir, open, rm, stat, symlink, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { RootEntry } from '../../compilers/types.js';
import { buildFailed, invalid, unavailable } from '../../model/errors.js';
import { execFileCollect, lastLines } from '../../util/exec.js';
import { checkRootEntries, defaultUserFiles, openChecked } from './rootfs.js';

// The image root as a read-only erofs disk (Debian's erofs-utils). mkfs.erofs 1.5 builds from a
// directory, so the app's files are first laid out in a staging tree the build owns, with their
// modes and owners, then packed: lz4hc-compressed, every timestamp 0 and a fixed UUID, so the
// same files make the same disk. The guest mounts it read-only under a tmpfs overlay
// (guest/init/init.c).

/** A fixed filesystem UUID: the disk is a function of its files only. */
const FS_UUID = '756e696b-726f-6f74-6469-736b00000001';
/** Disks are made of files on the host's disk; nothing larger than this goes in one. */
export const MAX_ROOT_DISK_BYTES = 16 * 1024 ** 3;
/** Directories the init mounts on or moves into the merged root: present on every disk. */
const ROOT_DIRS = ['/dev', '/proc', '/sys', '/tmp', '/run', '/etc'];

export interface ErofsOptions {
  /** a fresh folder for the staging tree (removed afterwards) */
  stageDir: string;
  /** where file sources may really lie (besides the host's system directories) */
  allowedDirs: string[];
}

/** Writes the app's files as an erofs image at `out`; returns its size in bytes. */
export async function writeErofs(out: string, app: RootEntry[], opts: ErofsOptions): Promise<number> {
  checkRootEntries(app);
  const asRoot = process.getuid?.() === 0;
  if (!asRoot && app.some((e) => (e.uid ?? 0) !== 0 || (e.gid ?? 0) !== 0))
    throw unavailable('ROOT_DISK_OWNERS', 'this image has files owned by other users than root, and only a daemon running as root can give them their owners on a root disk', 'run the daemon as root');
  const stage = opts.stageDir;
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { mode: 0o755 });
  try {
    await chmod(stage, 0o755);
    let bytes = 0;
    for (const d of ROOT_DIRS) await ensureDir(stage, d);
    await chmod(join(stage, 'tmp'), 0o1777);
    for (const e of [...defaultUserFiles(app), ...app]) {
      const host = await placeFor(stage, e.path, e.kind === 'dir');
      const mode = e.kind === 'symlink' ? 0 : e.mode & 0o7777;
      if (e.kind === 'dir') {
        await mkdir(host, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
      } else if (e.kind === 'symlink') {
        await symlink(e.target, host);
      } else {
        const fh = e.kind === 'file' ? await openChecked(e.path, e.source, opts.allowedDirs) : undefined;
        try {
          const data = e.kind === 'data' ? Buffer.from(e.content) : undefined;
          bytes += data ? data.length : (await fh!.stat()).size;
          if (bytes > MAX_ROOT_DISK_BYTES) throw invalid('ROOT_TOO_LARGE', `the image root is over ${MAX_ROOT_DISK_BYTES / 1024 ** 3} GiB`);
          // created here (O_EXCL: never through something already there), then filled
          const dst = await open(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          try {
            if (data) await dst.write(data);
            else await copyInto(fh!, dst);
          } finally {
            await dst.close();
          }
        } finally {
          await fh?.close();
        }
      }
      // chown clears set-id bits, so the mode comes after it
      if (asRoot) await lchown(host, e.uid ?? 0, e.gid ?? 0);
      if (e.kind !== 'symlink') await chmod(host, mode);
    }
    await rm(out, { force: true });
    const args = ['-zlz4hc,12', '-T0', `-U${FS_UUID}`, '-x-1', ...(asRoot ? [] : ['--all-root']), out, stage];
    const r = await execFileCollect('mkfs.erofs', args).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw unavailable('NO_MKFS_EROFS', 'mkfs.erofs is not installed', 'apt-get install erofs-utils (or run `npm run setup`)');
      throw e;
    });
    if (r.code !== 0) throw buildFailed('ROOT_DISK', `writing the root disk failed:\n${lastLines(r.output, 10)}`);
    return (await stat(out)).size;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

async function copyInto(src: FileHandle, dst: FileHandle): Promise<void> {
  const { size } = await src.stat();
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let done = 0; done < size; ) {
    const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - done), done);
    if (bytesRead === 0) throw new Error(`a file of the image root shrank while it was being copied`);
    await dst.write(buf, 0, bytesRead);
    done += bytesRead;
  }
}

async function ensureDir(stage: string, guestPath: string): Promise<void> {
  const host = await placeFor(stage, guestPath, true);
  await mkdir(host, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
  await chmod(host, 0o755);
}

/**
 * The staging path of a guest path. Every parent must be a real directory of the staging tree
 * (made if missing): an entry never reaches through a symlink an earlier entry made, which
 * would write outside the tree. What is already at the path is replaced (a later entry wins,
 * as in an initramfs), except that a directory is kept for a directory and never replaced by a file.
 */
async function placeFor(stage: string, guestPath: string, isDir: boolean): Promise<string> {
  const segs = guestPath.split('/').slice(1);
  let cur = stage;
  for (let i = 0; i < segs.length - 1; i++) {
    cur = join(cur, segs[i]!);
    const st = await lstat(cur).catch(() => undefined);
    if (!st) {
      await mkdir(cur, { mode: 0o755 });
      await chmod(cur, 0o755);
    } else if (!st.isDirectory()) {
      throw invalid('BAD_ROOT_ENTRY', `the image root's ${guestPath} would go through /${segs.slice(0, i + 1).join('/')}, which is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`);
    }
  }
  const host = join(cur, segs[segs.length - 1]!);
  const st = await lstat(host).catch(() => undefined);
  if (st?.isDirectory() && !isDir) throw invalid('BAD_ROOT_ENTRY', `the image root's ${guestPath} is both a directory and a file`);
  if (st && !st.isDirectory()) await unlink(host);
  if (st?.isDirectory() && isDir) return host;
  return host;
}
