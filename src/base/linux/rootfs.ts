import { constants } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RootEntry } from '../../compilers/types.js';
import { invalid } from '../../model/errors.js';
import { hostSystemFile, insideAny } from '../../util/safe-path.js';
import { CpioWriter } from './cpio.js';

/** The filesystems a root disk may hold; its name goes in the initramfs as /unik/root, for the init. */
export type RootDiskFs = 'erofs';

/**
 * Writes the image root as an initramfs: the unik init as /init, the directories it mounts
 * on, /dev/console (so the kernel can give init its console), and the app's files. The
 * build compresses it afterwards (compress.ts).
 *
 * With `rootDisk` the app's files are on a disk (erofs.ts) and the initramfs holds only the
 * init and /unik/root, which tells the init to find that disk and make it the root.
 *
 * The last line of defence against a host file slipping into an image: every file's real
 * source must lie in one of `allowedDirs` (the build's own folder, unik's caches) or be a
 * system file of the host (/usr, /lib…), whatever a compiler decided before.
 */
export async function writeInitramfs(path: string, initBinary: string, app: RootEntry[], allowedDirs: string[], rootDisk?: RootDiskFs): Promise<number> {
  checkRootEntries(app);
  const w = await CpioWriter.create(path);
  const made = new Set<string>();
  const mkdirs = async (dir: string) => {
    if (dir === '/' || made.has(dir)) return;
    await mkdirs(dirname(dir));
    made.add(dir);
    await w.dir(dir, 0o755);
  };
  for (const d of ['/dev', '/proc', '/sys', '/tmp', '/etc', '/unik']) await mkdirs(d);
  await w.charDevice('/dev/console', 5, 1, 0o600);
  if (rootDisk) {
    await w.file('/unik/root', Buffer.from(`${rootDisk}\n`), 0o444);
  } else {
    for (const e of defaultUserFiles(app)) await w.file(e.path, Buffer.from(e.content), e.mode);
  }
  await copyChecked(w, '/init', initBinary, 0o755, allowedDirs);
  for (const e of app) {
    await mkdirs(dirname(e.path));
    const owner = { uid: e.uid ?? 0, gid: e.gid ?? 0 };
    if (e.kind === 'dir') {
      if (!made.has(e.path)) await w.dir(e.path, e.mode & 0o7777, owner);
      made.add(e.path);
    } else if (e.kind === 'file') await copyChecked(w, e.path, e.source, e.mode & 0o7777, allowedDirs, owner);
    else if (e.kind === 'data') await w.file(e.path, Buffer.from(e.content), e.mode & 0o7777, owner);
    else await w.symlink(e.path, e.target, owner);
  }
  return w.finish();
}

/** Programs look up users (servers dropping privileges, getpwuid): root and nobody, no logins, unless the app brings its own. */
export function defaultUserFiles(app: RootEntry[]): (RootEntry & { kind: 'data' })[] {
  const has = (p: string) => app.some((e) => e.path === p);
  const out: (RootEntry & { kind: 'data' })[] = [];
  if (!has('/etc/passwd')) out.push({ kind: 'data', path: '/etc/passwd', content: 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n', mode: 0o644 });
  if (!has('/etc/group')) out.push({ kind: 'data', path: '/etc/group', content: 'root:x:0:\nnogroup:x:65534:\n', mode: 0o644 });
  return out;
}

const MAX_ID = 0xfffffffe;

/**
 * Every entry's guest path is absolute and plain (no `.`, `..`, empty segments or NUL), its
 * owner a valid id, its mode a permission: checked before anything is written.
 */
export function checkRootEntries(app: RootEntry[]): void {
  for (const e of app) {
    const p = e.path;
    const bad = (why: string) => invalid('BAD_ROOT_ENTRY', `bad path in image root: ${JSON.stringify(String(p).slice(0, 200))} (${why})`);
    if (typeof p !== 'string' || !p.startsWith('/')) throw bad('not absolute');
    if (p.length > 4096 || p.includes('\0')) throw bad('too long or holds a NUL');
    const segs = p.split('/').slice(1);
    if (p !== '/' && segs.some((s) => s === '' || s === '.' || s === '..' || s.length > 255)) throw bad('empty, "." or ".." segment');
    if (p === '/') throw bad('the root itself');
    for (const id of [e.uid, e.gid]) if (id !== undefined && (!Number.isInteger(id) || id < 0 || id > MAX_ID)) throw invalid('BAD_ROOT_ENTRY', `bad owner ${id} of ${p}`);
    if (e.kind !== 'symlink' && (!Number.isInteger(e.mode) || e.mode < 0)) throw invalid('BAD_ROOT_ENTRY', `bad mode of ${p}`);
    if (e.kind === 'symlink' && (typeof e.target !== 'string' || e.target === '' || e.target.includes('\0') || e.target.length > 4095)) throw invalid('BAD_ROOT_ENTRY', `bad symlink target of ${p}`);
  }
}

/** The bytes of the app's files, as the image root holds them uncompressed (sources stat'ed, symlinks followed). */
export async function rootBytes(app: RootEntry[]): Promise<number> {
  let total = 0;
  for (const e of app) {
    if (e.kind === 'file') total += await stat(e.source).then((s) => s.size, () => 0);
    else if (e.kind === 'data') total += Buffer.byteLength(e.content);
  }
  return total;
}

/**
 * Opens one host file for reading after checking where it really is: its real path must lie
 * in `allowedDirs` or the host's system directories; opened without following a last-moment
 * symlink, and it must be a regular file. The caller closes it.
 */
export async function openChecked(guestPath: string, source: string, allowedDirs: string[]): Promise<FileHandle> {
  const real = await realpath(source).catch(() => undefined);
  const allowed = real !== undefined && ((await insideAny(allowedDirs, real)) || (await hostSystemFile(real)) !== undefined);
  if (!real || !allowed)
    throw invalid('FILE_NOT_ALLOWED', `the image's ${guestPath} would be read from outside the build and the host's system directories; it was left out and the build stopped`, 'only files of the upload and system files of the daemon host can go into an image');
  let fh: FileHandle;
  try {
    fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw invalid('FILE_NOT_ALLOWED', `the image's ${guestPath} could not be opened safely (${(e as NodeJS.ErrnoException).code})`);
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw invalid('FILE_NOT_ALLOWED', `the image's ${guestPath} is not a regular file`);
  }
  return fh;
}

async function copyChecked(w: CpioWriter, guestPath: string, source: string, mode: number, allowedDirs: string[], owner?: { uid: number; gid: number }): Promise<void> {
  const fh = await openChecked(guestPath, source, allowedDirs);
  try {
    await w.fileFrom(guestPath, fh, mode, owner);
  } finally {
    await fh.close();
  }
}
