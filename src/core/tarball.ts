import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { Unpack, type ReadEntry } from 'tar';
import { invalid } from '../model/errors.js';
import { whereIs } from '../util/safe-path.js';

// An upload is hostile until unpacked and checked. node-tar already refuses entries whose path
// has `..` and will not write through a symlink; on top of that an entry is refused when:
//   - it is a device or a fifo;
//   - it is a symlink whose target is absolute, climbs out of the root, or has a `..` after a
//     name (`x/..` climbs out if x is itself a link to `.`: only leading `..` are judged
//     reliably on the text alone);
//   - it is a hard link whose target is absolute or has any `..`;
//   - it would take the unpacked tree past the size or entry-count cap (a gzip bomb is
//     stopped before the disk fills).
// Then every symlink of the unpacked tree is resolved and must stay inside it.
// The daemon unpacks as root: owners in the archive are ignored (all is the daemon's) and modes
// lose their setuid, setgid and sticky bits, so an upload never plants a setuid-root program.

const HINT = 'send a .tar.gz of the directory in the multipart field "tarfile"';
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const OK_TYPES = new Set([...FILE_TYPES, 'Directory', 'SymbolicLink', 'Link']);

export function maxUnpackedBytes(): number {
  return positive(process.env.UNIK_MAX_UPLOAD_UNPACKED_MB, 4096) * 1024 * 1024;
}
export function maxEntries(): number {
  return positive(process.env.UNIK_MAX_UPLOAD_ENTRIES, 200_000);
}
function positive(v: string | undefined, dflt: number): number {
  const n = Number(v);
  return v && Number.isFinite(n) && n > 0 ? n : dflt;
}

/** Why a tar entry may not be unpacked, or undefined when it may. */
export function entryRefusal(path: string, type: string, linkpath: string | undefined): string | undefined {
  const parts = path.split('/').filter((p) => p && p !== '.');
  if (path.startsWith('/') || parts.includes('..')) return `${path}: a path outside its root`;
  if (!OK_TYPES.has(type)) return `${path}: a ${type} entry (devices, fifos and the like are not allowed)`;
  if (type === 'SymbolicLink' || type === 'Link') {
    const target = linkpath ?? '';
    const kind = type === 'Link' ? 'hard link' : 'symlink';
    if (!target) return `${path}: a ${kind} with no target`;
    if (target.startsWith('/')) return `${path}: a ${kind} to an absolute path (${target})`;
    const t = target.split('/').filter((p) => p && p !== '.');
    if (type === 'Link') return t.includes('..') ? `${path}: a hard link to ${target}, outside its root` : undefined;
    const ups = t.findIndex((p) => p !== '..');
    const leading = ups === -1 ? t.length : ups;
    if (t.slice(leading).includes('..')) return `${path}: a symlink to ${target} ("..": after a name)`;
    if (leading > parts.length - 1) return `${path}: a symlink to ${target}, outside its root`;
  }
  return undefined;
}

/** Unpacks an upload (tar, tar.gz or tar.zst), refusing anything that is not a tar or escapes the root. */
export async function unpack(tarball: string, dest: string, opts: { allowEmpty?: boolean } = {}): Promise<void> {
  await mkdir(dest, { recursive: true });
  const { size } = await stat(tarball);
  if (size === 0) throw invalid('BAD_TARBALL', 'the uploaded tarfile is empty', HINT);
  const maxBytes = maxUnpackedBytes();
  const maxCount = maxEntries();
  let entries = 0;
  let bytes = 0;
  let refusal: Error | undefined;
  const u = new Unpack({
    cwd: dest,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (path, entry) => {
      if (refusal) return false;
      const e = entry as ReadEntry;
      if (typeof e.mode === 'number') e.mode &= 0o777;
      entries++;
      if (FILE_TYPES.has(e.type)) bytes += e.size ?? 0;
      let why: Error | undefined;
      if (entries > maxCount)
        why = invalid('UPLOAD_TOO_LARGE', `the uploaded tarfile has more than ${maxCount} entries`, 'upload only what the app needs, or raise UNIK_MAX_UPLOAD_ENTRIES on the daemon host');
      else if (bytes > maxBytes)
        why = invalid('UPLOAD_TOO_LARGE', `the uploaded tarfile unpacks to more than ${Math.round(maxBytes / 1024 / 1024)} MB`, 'upload only what the app needs, or raise UNIK_MAX_UPLOAD_UNPACKED_MB on the daemon host');
      else {
        const r = entryRefusal(path, e.type, e.linkpath);
        if (r) why = invalid('BAD_TARBALL', `the tarfile has an entry that is not allowed: ${r}`, 'symlinks must be relative and stay inside the app directory; devices and absolute paths are refused');
      }
      if (!why) return true;
      refusal = why;
      // stop reading at once: nothing after a refused entry is written
      queueMicrotask(() => u.abort(why));
      return false;
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      u.on('error', reject);
      u.on('close', () => resolve());
      const input = createReadStream(tarball);
      input.on('error', reject);
      input.pipe(u as unknown as NodeJS.WritableStream);
    });
  } catch (e) {
    if (refusal) throw refusal;
    throw invalid('BAD_TARBALL', `the uploaded tarfile is not a valid tar or tar.gz archive: ${(e as Error).message}`, HINT);
  }
  if (refusal) throw refusal;
  if (entries === 0 && !opts.allowEmpty) throw invalid('BAD_TARBALL', 'the uploaded tarfile is not a tar archive, or holds no files', HINT);
  await checkSymlinks(dest, dest);
}

/** Canonicalise, then check: every symlink of the unpacked tree resolves inside it (or nowhere). */
async function checkSymlinks(root: string, dir: string): Promise<void> {
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isSymbolicLink()) {
      if ((await whereIs(root, p)) === 'outside')
        throw invalid('BAD_TARBALL', `the tarfile has a symlink that leads outside it: ${posix.normalize(relative(root, p))}`, 'symlinks must be relative and stay inside the app directory');
    } else if (d.isDirectory() && !(await lstat(p)).isSymbolicLink()) await checkSymlinks(root, p);
  }
}
