import { existsSync } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { normalize } from 'node:path';
import { invalid } from '../model/errors.js';
import { hostSystemFile, insideAny, SYSTEM_DIRS } from '../util/safe-path.js';
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
