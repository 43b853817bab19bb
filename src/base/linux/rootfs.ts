import { constants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RootEntry } from '../../compilers/types.js';
import { invalid } from '../../model/errors.js';
import { hostSystemFile, insideAny } from '../../util/safe-path.js';
import { CpioWriter } from './cpio.js';

/**
 * Writes the image root as an initramfs: the unik init as /init, the directories it mounts
 * on, /dev/console (so the kernel can give init its console), and the app's files. The
 * build compresses it afterwards (compress.ts).
 *
 * The last line of defence against a host file slipping into an image: every file's real
 * source must lie in one of `allowedDirs` (the build's own folder, unik's caches) or be a
 * system file of the host (/usr, /lib…), whatever a compiler decided before.
 */
export async function writeInitramfs(path: string, initBinary: string, app: RootEntry[], allowedDirs: string[]): Promise<number> {
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
  // programs look up users (servers dropping privileges, getpwuid): root and nobody, no logins
  const has = (p: string) => app.some((e) => e.path === p);
  if (!has('/etc/passwd')) await w.file('/etc/passwd', Buffer.from('root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n'), 0o644);
  if (!has('/etc/group')) await w.file('/etc/group', Buffer.from('root:x:0:\nnogroup:x:65534:\n'), 0o644);
  await copyChecked(w, '/init', initBinary, 0o755, allowedDirs);
  for (const e of app) {
    if (!e.path.startsWith('/') || e.path.split('/').includes('..')) throw new Error(`bad path in image root: ${e.path}`);
    await mkdirs(dirname(e.path));
    if (e.kind === 'dir') {
      if (!made.has(e.path)) await w.dir(e.path, e.mode);
      made.add(e.path);
    } else if (e.kind === 'file') await copyChecked(w, e.path, e.source, e.mode, allowedDirs);
    else if (e.kind === 'data') await w.file(e.path, Buffer.from(e.content), e.mode);
    else await w.symlink(e.path, e.target);
  }
  return w.finish();
}

/** Copies one host file in after checking where it really is; opened without following a last-moment symlink. */
async function copyChecked(w: CpioWriter, guestPath: string, source: string, mode: number, allowedDirs: string[]): Promise<void> {
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
  try {
    if (!(await fh.stat()).isFile()) throw invalid('FILE_NOT_ALLOWED', `the image's ${guestPath} is not a regular file`);
    await w.fileFrom(guestPath, fh, mode);
  } finally {
    await fh.close();
  }
}
