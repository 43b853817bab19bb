// The start-up sweep: what a crashed or killed daemon left half-made, and caches past their size
// limit. It runs under the home's lock, before anything is served, so nothing it removes can be
// in use by this daemon; the VMs that outlived the last one keep their sockets (known ids).
//
// Safety: it never leaves UNIK_HOME and never follows a symlink. Every directory it enters is
// opened with O_NOFOLLOW and held open; its entries are reached through /proc/self/fd/N/NAME,
// so a folder swapped for a symlink after it was looked at (a build user's process racing us)
// still cannot lead anywhere else. A symlink found is removed as a link, its target untouched.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { invalid } from '../model/errors.js';
import type { UnikPaths } from '../model/paths.js';

/** `*.tmp-*`: a folder or file written under a temporary name, renamed into place when whole
 *  (image and volume stages, snapshot templates `64m-tcg.tmp-PID-HEX`, OCI packing `oci.tmp-…`) */
const PARTIAL = /\.tmp-/;
/** control and monitor sockets of an instance: the first 16 chars of its id, then a suffix */
const INSTANCE_SOCKET = /^([0-9a-f]{16})\./;

// Under cache/, what the compilers and base/linux keep:
//   zstd/HASH.cpio.zst   compressed image roots, by the hash of the cpio: regenerable (a build compresses again)
//   go-std/KEY/          Go's shared standard-library build cache (+ packages.txt): regenerable
//                        (the next Go build compiles them again); evicted as a whole, since a
//                        packages.txt that names evicted entries would stop the warm-up for good
//   jlink/KEY/           Java runtimes cut by jlink: regenerable (jlink again)
//   init/HASH/init       the guest init: never evicted (small, and every build needs it)
//   gopath/              the host's Go module cache when GOPATH is unset: never (builds have no
//                        network; it cannot be fetched again)
// No image record points into cache/: an image holds its own copies (root copied from zstd/,
// kernel hard-linked from kernels/), so evicting an entry never breaks an image. kernels/ is
// never touched, even when UNIK_KERNEL_CACHE puts it inside cache/.
//   debian-ARCH/roots/KEY/          another architecture's Debian packages, unpacked: regenerable
//   debian-ARCH/cache/archives/*.deb (downloaded again); the sweep runs before any build, so
//                                   none is being read. Its lists and apt state are kept (small).
const EVICTABLE = ['zstd', 'go-std', 'jlink', 'debian-amd64/roots', 'debian-arm64/roots', 'debian-amd64/cache/archives', 'debian-arm64/cache/archives'];
/** half-made cache entries: zstd's `HASH.cpio.zst.PID.tmp`, jlink's `.tmp-HEX` */
const CACHE_PARTIAL: Record<string, RegExp> = { zstd: /\.tmp$/, jlink: /^\.tmp-/, 'debian-amd64/roots': /^\.tmp-/, 'debian-arm64/roots': /^\.tmp-/ };

export const DEFAULT_CACHE_MAX_MB = 4096;

/** UNIK_CACHE_MAX_MB: the most the regenerable caches may hold together, in MB (default 4096). */
export function cacheLimitBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.UNIK_CACHE_MAX_MB?.trim();
  if (!raw) return DEFAULT_CACHE_MAX_MB * 2 ** 20;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0)
    throw invalid('BAD_CACHE_LIMIT', `UNIK_CACHE_MAX_MB must be a number of MB (0 or more), got ${JSON.stringify(raw)}`, `unset it for the default of ${DEFAULT_CACHE_MAX_MB} MB`);
  return Math.floor(mb * 2 ** 20);
}

export interface SweepOptions {
  paths: UnikPaths;
  /** ids of the instances in the store: their sockets stay */
  instanceIds: Iterable<string>;
  /** default: cacheLimitBytes() */
  cacheLimitBytes?: number;
  log?: (msg: string) => void;
}

export interface SweepReport {
  /** what went, relative to the home, in the order removed */
  removed: string[];
  orphans: { count: number; bytes: number };
  cache: { count: number; bytes: number };
  /** what could not be removed, and why */
  errors: string[];
}

export function sweepHome(opts: SweepOptions): SweepReport {
  const { paths } = opts;
  const limit = opts.cacheLimitBytes ?? cacheLimitBytes();
  const report: SweepReport = { removed: [], orphans: { count: 0, bytes: 0 }, cache: { count: 0, bytes: 0 }, errors: [] };
  const drop = (dir: Dir, name: string, tally: { count: number; bytes: number }): boolean => {
    try {
      tally.bytes += removeEntry(dir, name);
      tally.count++;
      report.removed.push(dir.rel(name));
      return true;
    } catch (e) {
      report.errors.push(`${dir.rel(name)}: ${(e as Error).message}`);
      return false;
    }
  };
  const orphan = (dir: Dir, name: string) => void drop(dir, name, report.orphans);
  const home = Dir.openRoot(paths.home);
  // one area that cannot be read (say, a folder root cannot enter) does not stop the others, nor the daemon
  const area = (dir: string, fn: (d: Dir) => void) => {
    try {
      home.within(inHome(paths, dir), fn);
    } catch (e) {
      report.errors.push(`${relative(paths.home, dir)}: ${(e as Error).message}`);
    }
  };
  try {
    // tmp/: everything (builds, pulls, volume work); a tmp that is not a real folder goes too
    const tmpName = inHome(paths, paths.tmp);
    const st = tmpName && home.lstat(tmpName);
    if (tmpName && st && !st.isDirectory()) {
      orphan(home, tmpName);
      mkdirSync(home.path(tmpName), { recursive: true });
    }
    area(paths.tmp, (tmp) => tmp.entries().forEach((e) => orphan(tmp, e)));

    // images/: stages; in each image, OCI packing and snapshot templates never renamed into place
    area(paths.images, (images) => {
      for (const e of images.entries()) {
        if (PARTIAL.test(e)) orphan(images, e);
        else
          images.within(e, (img) => {
            for (const f of img.entries()) if (PARTIAL.test(f)) orphan(img, f);
            img.within('snapshots', (snaps) => snaps.entries().filter((s) => PARTIAL.test(s)).forEach((s) => orphan(snaps, s)));
          });
      }
    });

    // volumes/: stages
    area(paths.volumes, (vols) => vols.entries().filter((e) => PARTIAL.test(e)).forEach((e) => orphan(vols, e)));

    // sock/: templates die with the daemon that made them; an instance's sockets go with its record
    const known = new Set([...opts.instanceIds].map((id) => id.slice(0, 16)));
    area(paths.sockets, (sock) => {
      for (const e of sock.entries()) {
        const inst = INSTANCE_SOCKET.exec(e);
        if (e.startsWith('tpl-') || (inst && !known.has(inst[1]!))) orphan(sock, e);
      }
    });

    // cache/: half-made entries, then the oldest regenerable ones until the total fits the limit
    area(paths.cache, (cache) => sweepCache(cache, protectedInCache(paths), limit, orphan, (d, n) => drop(d, n, report.cache)));
  } finally {
    home.close();
  }
  if (opts.log && (report.removed.length || report.errors.length)) opts.log(summary(report, limit));
  return report;
}

function sweepCache(cache: Dir, keep: string | undefined, limit: number, orphan: (d: Dir, name: string) => void, evict: (d: Dir, name: string) => boolean): void {
  const candidates: { dir: Dir; name: string; bytes: number; mtimeMs: number }[] = [];
  const held: Dir[] = [];
  try {
    for (const kind of EVICTABLE) {
      const dir = nested(cache, kind.split('/'), held);
      if (!dir) continue;
      for (const e of dir.entries()) {
        const rel = `${kind}/${e}`;
        if (keep && (rel === keep || keep.startsWith(rel + '/') || rel.startsWith(keep + '/'))) continue;
        if (CACHE_PARTIAL[kind]?.test(e)) orphan(dir, e);
        else {
          const u = usage(dir, e);
          if (u) candidates.push({ dir, name: e, ...u });
        }
      }
    }
    let total = candidates.reduce((n, c) => n + c.bytes, 0);
    for (const c of candidates.sort((a, b) => a.mtimeMs - b.mtimeMs)) {
      if (total <= limit) break;
      if (evict(c.dir, c.name)) total -= c.bytes;
    }
  } finally {
    held.forEach((d) => d.close());
  }
}

/** The folder at `parts` under `from`, each level opened without following links; every level opened is kept in `held` to be closed. */
function nested(from: Dir, parts: string[], held: Dir[]): Dir | undefined {
  let at: Dir | undefined = from;
  for (const p of parts) {
    at = at.sub(p);
    if (!at) return undefined;
    held.push(at);
  }
  return at;
}

function summary(r: SweepReport, limit: number): string {
  const parts: string[] = [];
  if (r.orphans.count) parts.push(`${r.orphans.count} orphan${r.orphans.count === 1 ? '' : 's'} (${human(r.orphans.bytes)})`);
  if (r.cache.count) parts.push(`${r.cache.count} cache entr${r.cache.count === 1 ? 'y' : 'ies'} (${human(r.cache.bytes)}) over the cache limit of ${human(limit)} (UNIK_CACHE_MAX_MB)`);
  const failed = r.errors.length ? `could not remove ${r.errors.length}: ${r.errors.slice(0, 3).join('; ')}` : '';
  return `start-up sweep: ${[parts.length ? `removed ${parts.join(' and ')}` : '', failed].filter(Boolean).join('; ')}`;
}

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  for (; n >= 1024 && u < units.length - 1; u++) n /= 1024;
  return `${u ? n.toFixed(1) : n} ${units[u]}`;
}

/** A folder of the home as one plain name under it, or undefined (it lies elsewhere). */
function inHome(paths: UnikPaths, dir: string): string | undefined {
  const rel = relative(paths.home, dir);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) && !rel.includes(sep) ? rel : undefined;
}

/** kernels/ as a path under cache/, when UNIK_KERNEL_CACHE puts it there (its entries are
 *  hash-named folders, so only an evictable folder it lies in, or under, is at stake) */
function protectedInCache(paths: UnikPaths): string | undefined {
  const rel = relative(paths.cache, paths.kernels);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split(sep).join('/') : undefined;
}

/** A directory held open; NAMEs are single entries of it, never paths. */
class Dir {
  private constructor(
    private readonly fd: number,
    /** for messages: the path from the home */
    private readonly label: string,
  ) {}

  /** the home itself: where UNIK_HOME points (a symlink there is the user's choice) */
  static openRoot(path: string): Dir {
    return new Dir(openSync(path, constants.O_RDONLY | constants.O_DIRECTORY), '');
  }

  path(name: string): string {
    if (!name || name === '.' || name === '..' || name.includes('/')) throw new Error(`not an entry name: ${name}`);
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  rel(name: string): string {
    return this.label ? `${this.label}/${name}` : name;
  }

  entries(): string[] {
    return readdirSync(`/proc/self/fd/${this.fd}`);
  }

  lstat(name: string): Stats | undefined {
    try {
      return lstatSync(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** the entry as a Dir if it is a real folder (not a symlink to one); else undefined */
  sub(name: string): Dir | undefined {
    try {
      return new Dir(openSync(this.path(name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW), this.rel(name));
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((e as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw e;
    }
  }

  /** runs fn in the sub-folder if it is a real one, and closes it after */
  within(name: string | undefined, fn: (d: Dir) => void): void {
    const d = name === undefined ? undefined : this.sub(name);
    if (!d) return;
    try {
      fn(d);
    } finally {
      d.close();
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Removes one entry (a folder with everything in it, or a file or link itself); returns the bytes. */
function removeEntry(dir: Dir, name: string): number {
  const st = dir.lstat(name);
  if (!st) return 0;
  let bytes = 0;
  if (st.isDirectory()) {
    const sub = dir.sub(name);
    if (sub) {
      try {
        for (const e of sub.entries()) bytes += removeEntry(sub, e);
      } finally {
        sub.close();
      }
      rmdirSync(dir.path(name));
      return bytes;
    }
  }
  // a file, a socket, or a symlink (the link, never its target)
  unlinkSync(dir.path(name));
  return st.size;
}

/** Bytes under an entry and when it was last written: the newest mtime of its files (a folder's
 *  own mtime moves when anything in it is removed, too), links not followed. */
function usage(dir: Dir, name: string): { bytes: number; mtimeMs: number } | undefined {
  const st = dir.lstat(name);
  if (!st) return undefined;
  if (!st.isDirectory()) return { bytes: st.size, mtimeMs: st.mtimeMs };
  const u = { bytes: 0, mtimeMs: -Infinity };
  dir.within(name, (sub) => {
    for (const e of sub.entries()) {
      const c = usage(sub, e);
      if (c) (u.bytes += c.bytes), (u.mtimeMs = Math.max(u.mtimeMs, c.mtimeMs));
    }
  });
  // an empty folder: its own time
  if (u.mtimeMs === -Infinity) u.mtimeMs = st.mtimeMs;
  return u;
}
