import { constants, existsSync } from 'node:fs';
import { lstat, open, readlink, realpath, stat } from 'node:fs/promises';
import { normalize, posix } from 'node:path';
import { invalid } from '../model/errors.js';
import { containedIn, hostSystemFile, insideAny, insideDir, SYSTEM_DIRS } from '../util/safe-path.js';
import { execFileCollect, type ExecResult } from '../util/exec.js';
import type { RootEntry } from './types.js';
import type { Arch } from '../model/arch.js';

// Dynamically linked programs need their loader and shared libraries in the image, at the paths
// the loader looks for them. `ldd` (glibc's) names them; a library it cannot find is an error
// that names it, before anything is built. Libraries loaded later with dlopen are invisible to
// ldd: callers add them explicitly (unik.yaml `libraries:`), and glibc's NSS modules are added
// whenever libc is, so name lookups work.
//
// What ldd prints is not trusted: an uploaded ELF names its own loader and RUNPATH, so every
// library it names must really be (after realpath) a system file of the host, or a file of a
// folder the caller allows (the upload, unik's Java runtime). ldd itself may run the program's
// loader: for uploaded files callers pass a confined ldd (src/compilers/confined.ts).

export type Ldd = (file: string) => Promise<ExecResult>;
const hostLdd: Ldd = (file) => execFileCollect('ldd', [file]);
/** a library named in unik.yaml: a file name the loader looks up, never a path with folders */
const LIBRARY_NAME = /^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$/;

export interface ClosureOptions {
  /** runs ldd on `files` (default: on the host, for host programs) */
  ldd?: Ldd;
  /** folders, beside the host's system directories, libraries may come from */
  alsoFrom?: string[];
}

const NSS = ['libnss_files.so.2', 'libnss_dns.so.2', 'libresolv.so.2'];

export async function isElf(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.readUInt32BE(0) === 0x7f454c46;
  } finally {
    await fh.close();
  }
}

/** ELF e_machine of each architecture unik builds for */
const ELF_MACHINE: Record<Arch, number> = { amd64: 62, arm64: 183 };
const MACHINE_NAMES: Record<number, string> = { 3: 'i386', 40: 'arm (32-bit)', 62: 'amd64', 183: 'arm64', 243: 'riscv', 21: 'ppc64' };

/** An ELF file's e_machine, or undefined when it is not a 64-bit little-endian ELF. */
export async function elfMachine(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(20);
    const { bytesRead } = await fh.read(b, 0, 20, 0);
    if (bytesRead < 20 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return undefined;
    return b.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

/**
 * Does the ELF file ask for a program interpreter (PT_INTERP: a dynamic loader)? A program
 * header table Linux would not load (entries not 56 bytes, over 4 KiB in all) counts as yes:
 * the caller refuses it rather than believe it static.
 */
export async function hasInterpreter(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const h = Buffer.alloc(64);
    const { bytesRead } = await fh.read(h, 0, 64, 0);
    if (bytesRead < 64) return true;
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    if (phentsize !== 56 || phnum * 56 > 4096 || phoff > 2 ** 40) return true;
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return true;
    return false;
  } finally {
    await fh.close();
  }
}

/** A program built for another machine than the image's would fail at exec inside the guest: refused here, named. */
export async function checkElfArch(path: string, arch: Arch, what: string): Promise<void> {
  const m = await elfMachine(path);
  if (m === ELF_MACHINE[arch]) return;
  const is = m === undefined ? 'not a 64-bit little-endian ELF file' : `built for ${MACHINE_NAMES[m] ?? `machine ${m}`}`;
  throw invalid('WRONG_ARCH', `${what} is ${is}, but the image is for ${arch}`, arch === 'amd64' ? 'build it for amd64' : `build it for ${arch} (a Makefile must use the CC it is given)`);
}

/** The absolute paths of the loader and every shared library `file` needs (empty when static). */
export async function sharedLibraries(file: string, ldd: Ldd = hostLdd): Promise<string[]> {
  const r = await ldd(file);
  if (/not a dynamic executable|statically linked/.test(r.output)) return [];
  const missing = [...r.output.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]!);
  if (missing.length)
    throw invalid('LIBRARY_NOT_FOUND', `${file} needs shared librar${missing.length > 1 ? 'ies' : 'y'} that cannot be found: ${missing.join(', ')}`, 'install the package that provides it on the daemon host, or add it to unik.yaml `libraries:`');
  const libs = new Set<string>();
  for (const line of r.output.split('\n')) {
    const arrow = /=>\s+(\/\S+)\s+\(0x/.exec(line);
    const loader = /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (arrow) libs.add(arrow[1]!);
    else if (loader) libs.add(loader[1]!);
  }
  return [...libs];
}

/** Root entries for some ELF files and everything they load, each library at the path ldd gave. */
export async function elfClosure(files: string[], extraLibraries: string[] = [], opts: ClosureOptions = {}): Promise<RootEntry[]> {
  const libs = new Map<string, string>(); // path in the image → checked host file
  const add = async (lib: string, why: string) => {
    const real = (await hostSystemFile(lib)) ?? (await fileInside(opts.alsoFrom ?? [], lib));
    if (!real)
      throw invalid('LIBRARY_NOT_ALLOWED', `${why} names ${lib}, which is not a file under the daemon host's system directories (${SYSTEM_DIRS.join(' ')})`, 'only system libraries of the daemon host (or files of the upload) can go into an image');
    libs.set(normalize(lib), real);
  };
  for (const f of files) for (const l of await sharedLibraries(f, opts.ldd)) await add(l, `the program ${f}`);
  for (const name of extraLibraries) {
    const why = `unik.yaml libraries: ${name}`;
    let path: string | undefined;
    if (name.startsWith('/')) path = name;
    else if (!LIBRARY_NAME.test(name)) throw invalid('BAD_APP_MANIFEST', `${why}: a library is a file name the loader finds (e.g. libfoo.so.1) or an absolute path on the daemon host`);
    else path = await findLibrary(name);
    if (!path) throw invalid('LIBRARY_NOT_FOUND', `library ${name} (unik.yaml libraries:) cannot be found on the daemon host`);
    await add(path, why);
    // a checked system file: ldd on it may run on the host
    for (const l of await sharedLibraries(libs.get(normalize(path))!)) await add(l, `the library ${path}`);
  }
  if ([...libs.keys()].some((l) => /\/libc\.so\.6$/.test(l)))
    for (const n of NSS) {
      const p = await findLibrary(n);
      if (p) await add(p, 'glibc');
    }
  return [...libs].map(([path, source]): RootEntry => ({ kind: 'file', path, source, mode: 0o755 }));
}

/** The canonical path of `p` when it is a regular file inside one of `dirs`. */
async function fileInside(dirs: string[], p: string): Promise<string | undefined> {
  if (!dirs.length) return undefined;
  const real = await realpath(p).catch(() => undefined);
  if (!real || !(await insideAny(dirs, real))) return undefined;
  return (await stat(real)).isFile() ? real : undefined;
}

/** Where the dynamic loader would find a library by name. */
export async function findLibrary(name: string): Promise<string | undefined> {
  for (const dir of ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib', '/lib']) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return undefined;
}

/** glibc reads these for name lookups; the guest init writes /etc/hosts and /etc/resolv.conf. */
export const NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';

// Foreign-architecture programs (arm64 on an amd64 host) cannot go through ldd: it would run
// their loader. Their closure is read straight from the ELF files instead (PT_INTERP, DT_NEEDED,
// DT_RUNPATH/DT_RPATH) and resolved inside a root folder holding the foreign packages, the way
// the guest's loader will resolve it. The files are untrusted: every offset and count is bounded
// and every path is resolved with the root as "/", so nothing outside the root is ever read.

/** What the dynamic loader reads from an ELF file. */
export interface ElfDynamic {
  machine: number;
  /** PT_INTERP: the loader's path in the guest; undefined for a static program */
  interp?: string;
  /** DT_NEEDED names, in order */
  needed: string[];
  /** DT_RUNPATH and DT_RPATH entries, colon lists split */
  runpath: string[];
  rpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
/** Linux refuses program header tables over 64 KiB; so do we */
const MAX_PHDRS_BYTES = 64 * 1024;
const MAX_DYNAMIC_BYTES = 1024 * 1024;
const MAX_STRING = 4096;
const MAX_NEEDED = 1024;
const MAX_LIBRARIES = 4096;

function badElf(what: string, why: string) {
  return invalid('BAD_ELF', `${what} is not an ELF file the loader could use: ${why}`, 'only well-formed 64-bit little-endian ELF programs and libraries can go into an image');
}

/** A 64-bit field as a number; values past 2^53 become Infinity, which every bounds check refuses. */
function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Infinity;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Reads the loader's view of a 64-bit little-endian ELF file without running anything. */
export async function readElfDynamic(path: string, what = path): Promise<ElfDynamic> {
  // O_NONBLOCK: a FIFO planted as a library must not hang the build
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw badElf(what, 'not a regular file');
    const size = st.size;
    const read = async (offset: number, length: number, part: string): Promise<Buffer> => {
      if (!(offset >= 0 && length >= 0 && offset + length <= size)) throw badElf(what, `its ${part} lies outside the file`);
      const b = Buffer.alloc(length);
      const { bytesRead } = await fh.read(b, 0, length, offset);
      if (bytesRead !== length) throw badElf(what, `its ${part} is cut short`);
      return b;
    };
    const h = await read(0, 64, 'ELF header');
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) throw badElf(what, 'not a 64-bit little-endian ELF file');
    const machine = h.readUInt16LE(18);
    const phoff = u64(h, 32);
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    if (phentsize !== 56 || phnum * phentsize > MAX_PHDRS_BYTES) throw badElf(what, 'its program header table is malformed');
    const ph = await read(phoff, phnum * phentsize, 'program header table');
    const segments: Segment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      segments.push({ type: ph.readUInt32LE(at), offset: u64(ph, at + 8), vaddr: u64(ph, at + 16), filesz: u64(ph, at + 32) });
    }
    const interp = await readInterp(segments, read, what);
    const dyn = segments.filter((s) => s.type === PT_DYNAMIC);
    if (dyn.length > 1) throw badElf(what, 'it has several dynamic segments');
    if (!dyn.length) return { machine, interp, needed: [], runpath: [], rpath: [] };
    return { machine, interp, ...(await readDynamic(dyn[0]!, segments, read, what)) };
  } finally {
    await fh.close();
  }
}

type ReadAt = (offset: number, length: number, part: string) => Promise<Buffer>;

async function readInterp(segments: Segment[], read: ReadAt, what: string): Promise<string | undefined> {
  const found = segments.filter((s) => s.type === PT_INTERP);
  if (found.length > 1) throw badElf(what, 'it names several loaders');
  if (!found.length) return undefined;
  const s = found[0]!;
  if (s.filesz < 2 || s.filesz > MAX_STRING) throw badElf(what, 'its loader path (PT_INTERP) has an impossible length');
  const raw = await read(s.offset, s.filesz, 'loader path (PT_INTERP)');
  const end = raw.indexOf(0);
  const path = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1');
  if (end < 0 || !path.startsWith('/')) throw badElf(what, 'its loader path (PT_INTERP) is not an absolute, terminated path');
  // the guest's kernel resolves it from the guest's "/": `..` cannot climb higher
  return posix.normalize(path);
}

async function readDynamic(dyn: Segment, segments: Segment[], read: ReadAt, what: string): Promise<Omit<ElfDynamic, 'machine' | 'interp'>> {
  if (dyn.filesz > MAX_DYNAMIC_BYTES) throw badElf(what, 'its dynamic section is absurdly large');
  const table = await read(dyn.offset, dyn.filesz - (dyn.filesz % 16), 'dynamic section');
  let strtab: number | undefined;
  let strsz: number | undefined;
  const needed: number[] = [];
  const runpath: number[] = [];
  const rpath: number[] = [];
  for (let at = 0; at + 16 <= table.length; at += 16) {
    const tag = table.readBigInt64LE(at);
    if (tag === 0n) break; // DT_NULL
    const val = u64(table, at + 8);
    if (tag === BigInt(DT_NEEDED)) needed.push(val);
    else if (tag === BigInt(DT_RUNPATH)) runpath.push(val);
    else if (tag === BigInt(DT_RPATH)) rpath.push(val);
    else if (tag === BigInt(DT_STRTAB)) strtab = val;
    else if (tag === BigInt(DT_STRSZ)) strsz = val;
  }
  if (needed.length > MAX_NEEDED || runpath.length + rpath.length > 16) throw badElf(what, 'it names absurdly many libraries or search paths');
  if (!needed.length && !runpath.length && !rpath.length) return { needed: [], runpath: [], rpath: [] };
  if (strtab === undefined || strsz === undefined) throw badElf(what, 'its dynamic section has no string table');
  const base = fileOffsetOf(strtab, segments);
  if (base === undefined) throw badElf(what, 'its string table lies in no loaded segment');
  const str = (off: number) => readString(read, base, strsz!, off, what);
  const paths = async (offs: number[]) => (await Promise.all(offs.map(str))).flatMap((p) => p.split(':')).filter(Boolean);
  return { needed: [...new Set(await Promise.all(needed.map(str)))], runpath: await paths(runpath), rpath: await paths(rpath) };
}

/** Where a virtual address of the file's loaded image lies in the file (DT_STRTAB is an address). */
function fileOffsetOf(vaddr: number, segments: Segment[]): number | undefined {
  const s = segments.find((seg) => seg.type === PT_LOAD && seg.vaddr <= vaddr && vaddr < seg.vaddr + seg.filesz);
  return s ? s.offset + (vaddr - s.vaddr) : undefined;
}

async function readString(read: ReadAt, base: number, strsz: number, off: number, what: string): Promise<string> {
  if (!(off < strsz)) throw badElf(what, 'a name points past its string table');
  const raw = await read(base + off, Math.min(MAX_STRING, strsz - off), 'string table');
  const end = raw.indexOf(0);
  if (end < 0) throw badElf(what, 'a name in its string table is not terminated');
  return raw.subarray(0, end).toString('latin1');
}

/** Architectures whose libraries come from a root of foreign packages, and where their loader looks. */
export type ForeignArch = Arch;
const FOREIGN_LIBRARY_DIRS: Record<ForeignArch, string[]> = {
  amd64: ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib', '/usr/lib'],
  arm64: ['/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib', '/usr/lib'],
};
/** glibc's $LIB and $PLATFORM in RUNPATH, as Debian's loader expands them */
const DST: Record<ForeignArch, Record<string, string>> = {
  amd64: { LIB: 'lib/x86_64-linux-gnu', PLATFORM: 'x86_64' },
  arm64: { LIB: 'lib/aarch64-linux-gnu', PLATFORM: 'aarch64' },
};
const MAX_SYMLINKS = 40;

/**
 * The host path of `guestPath` inside `root`, resolved as the guest would with `root` as "/":
 * absolute symlinks start again from the root and `..` stops at it, so no link leads out.
 * Undefined when it is missing, a symlink loop, or (checked once more with realpath) outside.
 */
export async function resolveInRoot(root: string, guestPath: string): Promise<string | undefined> {
  const realRoot = await realpath(root).catch(() => undefined);
  if (!realRoot || guestPath.includes('\0')) return undefined;
  let todo = guestPath.split('/').filter(Boolean);
  let done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = posix.join(realRoot, ...done, part);
    const st = await lstat(here).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return undefined;
      const target = await readlink(here);
      if (target.startsWith('/')) done = [];
      todo = [...target.split('/').filter(Boolean), ...todo];
    } else {
      if (todo.length && !st.isDirectory()) return undefined;
      done.push(part);
    }
  }
  const real = await realpath(posix.join(realRoot, ...done)).catch(() => undefined);
  return real && containedIn(realRoot, real) ? real : undefined;
}

/** Like resolveInRoot, but only a regular file. */
export async function fileInRoot(root: string, guestPath: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, guestPath);
  return host && (await stat(host)).isFile() ? host : undefined;
}

/** One ELF file whose closure is wanted: where it is on the host, and where it sits in the guest ($ORIGIN). */
export interface ForeignFile {
  source: string;
  guestPath: string;
}

/** The guest folders a file's libraries are looked up in: its RUNPATH (else RPATH), `libraryPath`, then the loader's defaults. */
function searchDirs(dyn: ElfDynamic, guestPath: string, arch: ForeignArch, libraryPath: string[] = []): string[] {
  const origin = posix.dirname(guestPath);
  const expand = (dir: string): string | undefined => {
    const out = dir.replace(/\$(\{(\w+)\}|(\w+))/g, (_m, _b, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare!;
      return name === 'ORIGIN' ? origin : (DST[arch][name] ?? '\0');
    });
    // a relative entry is relative to the guest's working directory, an unknown $TOKEN unusable: skipped
    return out.startsWith('/') && !out.includes('\0') ? posix.normalize(out) : undefined;
  };
  const own = (dyn.runpath.length ? dyn.runpath : dyn.rpath).map(expand).filter((d): d is string => d !== undefined);
  return [...new Set([...own, ...libraryPath.map((d) => posix.normalize(d)), ...FOREIGN_LIBRARY_DIRS[arch]])];
}

/**
 * A guest folder whose files come from a host folder other than the root (the upload at /app):
 * a library an uploaded file ships beside itself ($ORIGIN) is looked up there.
 */
export interface ForeignMount {
  guestDir: string;
  hostDir: string;
}

/** The first `dir/name` of `dirs` that is a file the image already holds (`inImage`), or a regular file inside the root or the mount holding it. */
async function findInRoot(root: string, dirs: string[], name: string, inImage: ReadonlyMap<string, string> = new Map(), mounts: ForeignMount[] = []): Promise<ForeignFile | undefined> {
  for (const dir of dirs) {
    const guestPath = posix.join(dir, name);
    const source = inImage.get(guestPath) ?? (await fileInMountOrRoot(root, mounts, guestPath));
    if (source) return { source, guestPath };
  }
  return undefined;
}

/**
 * Inside a mount, symlinks are followed on the host and must stay in its folder (an absolute
 * link would mean another file in the guest than on the host: found nowhere rather than wrong).
 */
async function fileInMountOrRoot(root: string, mounts: ForeignMount[], guestPath: string): Promise<string | undefined> {
  const m = mounts.find((x) => containedIn(x.guestDir, guestPath));
  if (!m) return fileInRoot(root, guestPath);
  const real = await insideDir(m.hostDir, posix.relative(m.guestDir, guestPath) || '.');
  return real && (await stat(real)).isFile() ? real : undefined;
}

/** A DT_NEEDED or unik.yaml name must be a bare file name: with a `/` the loader would take it as a path. */
function checkLibraryName(name: string, what: string): void {
  if (!LIBRARY_NAME.test(name) || name.length > 255)
    throw invalid('LIBRARY_NOT_ALLOWED', `${what} needs the library ${JSON.stringify(name.slice(0, 100))}, which is a path, not a library name`, 'only libraries found by name in the packages can go into an image');
}

/** How a closure is looked up beyond the root and each file's RUNPATH. */
export interface ForeignClosureOptions {
  /**
   * Files the caller puts in the image itself (a runtime's own libraries): a library found at
   * one of their guest paths is taken from there, its own needs followed, and not returned.
   */
  inImage?: ForeignFile[];
  /** guest folders searched after a file's RUNPATH and before the loader's defaults, as LD_LIBRARY_PATH would be */
  libraryPath?: string[];
  /** guest folders whose libraries come from another host folder (the upload) */
  mounts?: ForeignMount[];
}

/**
 * Root entries for the loader and every shared library that `files` (foreign ELF programs)
 * need, found inside `root` (a folder of unpacked packages) and placed at their guest paths:
 * each library where the loader will look it up, the loader at its PT_INTERP path. Nothing is
 * run. `extraLibraries` (unik.yaml `libraries:`) are names or absolute guest paths in the root.
 */
export async function foreignElfClosure(root: string, files: ForeignFile[], extraLibraries: string[] = [], arch: ForeignArch = 'arm64', opts: ForeignClosureOptions = {}): Promise<RootEntry[]> {
  const libs = new Map<string, string>(); // guest path → host file inside the root (or a mount)
  const inImage = new Map((opts.inImage ?? []).map((f): [string, string] => [posix.normalize(f.guestPath), f.source]));
  const visited = new Set<string>(); // guest paths of the caller's own files whose needs were followed
  // the loader is loaded first, under its file name (glibc's ld.so soname): libc's DT_NEEDED on it is already met
  const loaderNames = new Set<string>();
  const visit = async (file: ForeignFile, what: string): Promise<void> => {
    const dyn = await readElfDynamic(file.source, what);
    await checkElfArch(file.source, arch, what);
    if (dyn.interp) {
      loaderNames.add(posix.basename(dyn.interp));
      await take({ source: await loaderOf(root, dyn.interp, what), guestPath: dyn.interp });
    }
    const dirs = searchDirs(dyn, file.guestPath, arch, opts.libraryPath);
    for (const name of dyn.needed) {
      checkLibraryName(name, what);
      if (loaderNames.has(name)) continue;
      const found = await findInRoot(root, dirs, name, inImage, opts.mounts);
      if (!found) throw invalid('LIBRARY_NOT_FOUND', `${what} needs the shared library ${name}, which is not in the ${arch} packages`, 'add the library to unik.yaml `libraries:` only if its package is a dependency; otherwise the program cannot run');
      await take(found);
    }
  };
  const take = async (lib: ForeignFile): Promise<void> => {
    if (inImage.get(lib.guestPath) === lib.source) {
      // the caller's own file: already going in; what it needs still must
      if (visited.has(lib.guestPath)) return;
      visited.add(lib.guestPath);
      return visit(lib, `the library ${lib.guestPath}`);
    }
    if (libs.has(lib.guestPath)) return;
    if (libs.size >= MAX_LIBRARIES) throw invalid('LIBRARY_NOT_ALLOWED', `the program needs more than ${MAX_LIBRARIES} libraries`);
    libs.set(lib.guestPath, lib.source);
    await visit(lib, `the library ${lib.guestPath}`);
  };

  for (const f of files) {
    const at = posix.normalize(f.guestPath);
    if (visited.has(at)) continue;
    if (inImage.get(at) === f.source) visited.add(at);
    await visit(f, `the program ${f.guestPath}`);
  }
  for (const name of extraLibraries) await take(await extraLibrary(root, name, arch));
  if ([...libs.keys()].some((l) => /\/libc\.so\.6$/.test(l)))
    for (const n of NSS) {
      const found = await findInRoot(root, FOREIGN_LIBRARY_DIRS[arch], n);
      if (found) await take(found);
    }
  return [...libs].map(([path, source]): RootEntry => ({ kind: 'file', path, source, mode: 0o755 }));
}

async function loaderOf(root: string, interp: string, what: string): Promise<string> {
  const source = await fileInRoot(root, interp);
  if (!source) throw invalid('LIBRARY_NOT_FOUND', `${what} asks for the loader ${interp}, which is not in the packages`, 'programs for another architecture must be linked against glibc, whose loader comes with libc6');
  return source;
}

/** A unik.yaml `libraries:` entry, looked up in the root the way the loader would. */
async function extraLibrary(root: string, name: string, arch: ForeignArch): Promise<ForeignFile> {
  const why = `unik.yaml libraries: ${name}`;
  let found: ForeignFile | undefined;
  if (name.startsWith('/')) {
    const guestPath = posix.normalize(name);
    const source = await fileInRoot(root, guestPath);
    found = source ? { source, guestPath } : undefined;
  } else {
    if (!LIBRARY_NAME.test(name)) throw invalid('BAD_APP_MANIFEST', `${why}: a library is a file name the loader finds (e.g. libfoo.so.1) or an absolute path`);
    found = await findInRoot(root, FOREIGN_LIBRARY_DIRS[arch], name);
  }
  if (!found) throw invalid('LIBRARY_NOT_FOUND', `library ${name} (unik.yaml libraries:) is not in the ${arch} packages of the program`, 'only libraries of the program\'s package and its dependencies are available');
  return found;
}
