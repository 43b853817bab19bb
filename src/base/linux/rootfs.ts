import { dirname } from 'node:path';
import type { RootEntry } from '../../compilers/types.js';
import { CpioWriter } from './cpio.js';

/**
 * Writes the image root as an initramfs: the unik init as /init, the directories it mounts
 * on, /dev/console (so the kernel can give init its console), and the app's files. The
 * build compresses it afterwards (compress.ts).
 */
export async function writeInitramfs(path: string, initBinary: string, app: RootEntry[]): Promise<number> {
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
  await w.fileFrom('/init', initBinary, 0o755);
  for (const e of app) {
    if (!e.path.startsWith('/') || e.path.split('/').includes('..')) throw new Error(`bad path in image root: ${e.path}`);
    await mkdirs(dirname(e.path));
    if (e.kind === 'dir') {
      if (!made.has(e.path)) await w.dir(e.path, e.mode);
      made.add(e.path);
    } else if (e.kind === 'file') await w.fileFrom(e.path, e.source, e.mode);
    else if (e.kind === 'data') await w.file(e.path, Buffer.from(e.content), e.mode);
    else await w.symlink(e.path, e.target);
  }
  return w.finish();
}
