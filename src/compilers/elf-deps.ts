import { existsSync } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { invalid } from '../core/errors.js';
import { execFileCollect } from '../util/exec.js';
import type { RootEntry } from './types.js';

// Dynamically linked programs need their loader and shared libraries in the image, at the paths
// the loader looks for them. `ldd` (glibc's) names them; a library it cannot find is an error
// that names it, before anything is built. Libraries loaded later with dlopen are invisible to
// ldd: callers add them explicitly (unik.yaml `libraries:`), and glibc's NSS modules are added
// whenever libc is, so name lookups work.

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

/** The absolute paths of the loader and every shared library `file` needs (empty when static). */
export async function sharedLibraries(file: string): Promise<string[]> {
  const r = await execFileCollect('ldd', [file]);
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
export async function elfClosure(files: string[], extraLibraries: string[] = []): Promise<RootEntry[]> {
  const libs = new Set<string>();
  for (const f of files) for (const l of await sharedLibraries(f)) libs.add(l);
  for (const name of extraLibraries) {
    const path = name.startsWith('/') ? name : await findLibrary(name);
    if (!path) throw invalid('LIBRARY_NOT_FOUND', `library ${name} (unik.yaml libraries:) cannot be found on the daemon host`);
    libs.add(path);
    for (const l of await sharedLibraries(path)) libs.add(l);
  }
  if ([...libs].some((l) => /\/libc\.so\.6$/.test(l)))
    for (const n of NSS) {
      const p = await findLibrary(n);
      if (p) libs.add(p);
    }
  const entries: RootEntry[] = [];
  for (const l of libs) entries.push({ kind: 'file', path: l, source: await realpath(l), mode: 0o755 });
  return entries;
}

/** Where the dynamic loader would find a library by name. */
export async function findLibrary(name: string): Promise<string | undefined> {
  for (const dir of ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib', '/lib']) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return undefined;
}

/** glibc reads these for name lookups; the guest init writes /etc/hosts and /etc/resolv.conf. */
export const NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';
