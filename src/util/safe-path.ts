import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { invalid } from '../model/errors.js';

// Paths that come from an upload or a unik.yaml are hostile until checked. Every check here
// canonicalises first (realpath: every symlink on the way resolved, `..` gone) and then
// compares path segments, so `/usr/../etc/shadow`, `lib -> /etc` and `/rootkit` beside
// `/root` are all seen for what they are.

/** Host directories programs and libraries may be taken from: never /etc, /home, /root or unik's own home. */
export const SYSTEM_DIRS = ['/usr', '/lib', '/lib64', '/bin', '/sbin', '/opt'];

/** Is `p` `root` itself or below it? Both must already be canonical; compares whole segments. */
export function containedIn(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!isAbsolute(r) && r.split(sep)[0] !== '..');
}

async function canonical(p: string): Promise<string | undefined> {
  try {
    return await realpath(p);
  } catch {
    return undefined;
  }
}

/**
 * The canonical path of `p` (absolute, or relative to `root`) when it exists and really lies
 * inside `root`, symlinks followed; undefined when it is missing or leads out.
 */
export async function insideDir(root: string, p: string): Promise<string | undefined> {
  const realRoot = await canonical(root);
  const real = await canonical(resolve(root, p));
  if (!realRoot || !real) return undefined;
  return containedIn(realRoot, real) ? real : undefined;
}

/** Like insideDir, but tells a missing path from one that leads out of `root`. */
export async function whereIs(root: string, p: string): Promise<'inside' | 'missing' | 'outside'> {
  const full = resolve(root, p);
  const realRoot = (await canonical(root)) ?? resolve(root);
  // as written: under the root as given, or as canonical (callers hold either kind of path)
  if (!containedIn(resolve(root), full) && !containedIn(realRoot, full)) return 'outside';
  if (!(await lstat(full).then(() => true, () => false))) return 'missing';
  if (await insideDir(root, full)) return 'inside';
  // a dangling link reads nothing; anything that resolves elsewhere leads out
  return (await canonical(full)) === undefined ? 'missing' : 'outside';
}

let systemRoots: Promise<string[]> | undefined;
/** SYSTEM_DIRS canonicalised once (on merged-/usr Debian /lib is /usr/lib). */
function canonicalSystemDirs(): Promise<string[]> {
  systemRoots ??= Promise.all(SYSTEM_DIRS.map(canonical)).then((l) => [...new Set(l.filter((x): x is string => !!x))]);
  return systemRoots;
}

/**
 * The canonical path of `p` when it is a regular file of the host's system directories
 * (SYSTEM_DIRS, judged after every symlink is resolved); undefined otherwise. Refused when it is
 * not world-readable: a file only root may read (a key under /opt) never goes into an image.
 */
export async function hostSystemFile(p: string): Promise<string | undefined> {
  if (!isAbsolute(p)) return undefined;
  const real = await canonical(p);
  if (!real) return undefined;
  if (!(await canonicalSystemDirs()).some((d) => containedIn(d, real))) return undefined;
  const st = await stat(real);
  if (!st.isFile()) return undefined;
  if (!(st.mode & 0o004))
    throw invalid('HOST_FILE_NOT_READABLE', `the host file ${p}${real !== p ? ` (${real})` : ''} is not world-readable, so it is not copied into an image`, 'only files every user of the host may read can be taken from the host; name another file');
  return real;
}

/** Is the canonical `real` inside one of `roots` (canonicalised here)? */
export async function insideAny(roots: string[], real: string): Promise<boolean> {
  for (const r of roots) {
    const rr = await canonical(r);
    if (rr && containedIn(rr, real)) return true;
  }
  return false;
}

/**
 * Reads a file the app names by convention (package.json, go.mod, requirements.txt…):
 * undefined when it is not there; refused, without reading it, when it leads out of the app.
 * Parse errors quote the text they read, so a link to /etc/shadow must never be read.
 */
export async function readFileInside(root: string, name: string): Promise<string | undefined> {
  const where = await whereIs(root, name);
  if (where === 'missing') return undefined;
  if (where === 'outside') throw leavesUpload(name);
  const real = (await insideDir(root, name))!;
  if (!(await stat(real)).isFile()) return undefined;
  return readFile(real, 'utf8');
}

/** The one error for "this path, or a link on its way, leads out of the upload". */
export function leavesUpload(what: string, field?: string): Error {
  return invalid(
    'PATH_OUTSIDE_UPLOAD',
    `${field ? `${field} ` : ''}${what} leaves the app directory (through "..", an absolute path or a symlink): only files inside the upload can be used`,
    'keep every file the app needs inside its directory, and make symlinks relative and pointing inside it',
  );
}
