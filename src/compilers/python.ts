import { existsSync } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, normalize, posix, relative } from 'node:path';
import { invalid, isUnikError, unavailable } from '../model/errors.js';
import { machineArch, type Arch } from '../model/arch.js';
import { containedIn, hostSystemFile, insideDir, leavesUpload, readFileInside, SYSTEM_DIRS, whereIs } from '../util/safe-path.js';
import { checkElfArch, elfClosure, fileInRoot, foreignElfClosure, NSSWITCH, resolveInRoot, sharedLibraries, type ForeignFile } from './elf-deps.js';
import { debianPackageVersion, ensureDebianPackages } from './debian-packages.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

/** Debian's interpreter and standard library, at the same paths in the image as on the host. */
const PYTHON = '/usr/bin/python3.11';
const STDLIB = '/usr/lib/python3.11';
/** Debian's packages holding them, fetched for an architecture other than the host's */
const PACKAGES = ['python3.11-minimal', 'libpython3.11-stdlib'];
/** top-level parts of the standard library an app server never needs (and the arch's build config) */
const stdlibSkip = (arch: Arch) => new Set(['test', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', `config-3.11-${machineArch(arch)}-linux-gnu`]);
const APP_SKIP = new Set(['.git', '__pycache__', '.venv']);
const ENTRIES = ['__main__.py', 'app.py', 'main.py', 'server.py'];

/** Python: the app's files under /app, run by Debian's python3.11 with its standard library. */
export const pythonCompiler: Compiler = {
  language: 'python',
  looksFor: 'requirements.txt, *.py',
  hostTools: [{ name: PYTHON, pkg: 'python3.11' }],
  // the host's own architecture from the host; the other from Debian's packages for it
  arches: ['amd64', 'arm64'],
  description: [
    "Python 3.11 (linux base): the upload is a directory of .py files; it goes to /app, run by the daemon host's Debian /usr/bin/python3.11.",
    `For the other architecture (arm64 on an amd64 host), the interpreter and standard library are Debian's python3.11 build for it (${PACKAGES.join(', ')} and their dependencies, downloaded, never installed).`,
    'The entry is unik.yaml `entry:`, else the first of __main__.py, app.py, main.py, server.py.',
    'The image holds the interpreter, its standard library (without test/, idlelib/, tkinter/, lib2to3/, ensurepip/ and bytecode) and their shared libraries: no shell, no pip.',
    'requirements.txt is not installed: vendor pure-Python dependencies into the app directory (it is on PYTHONPATH).',
    'Build-time --args follow the script path; env is given at run time.',
  ].join('\n'),

  async detect(dir) {
    if (existsSync(join(dir, 'requirements.txt'))) return true;
    const names = await readdir(dir).catch(() => [] as string[]);
    return names.some((n) => n.endsWith('.py'));
  },

  async compile(ctx: CompileContext): Promise<AppRoot> {
    const foreign = ctx.arch !== HOST_ONLY[0];
    if (!foreign && (!existsSync(PYTHON) || !existsSync(join(STDLIB, 'os.py'))))
      throw unavailable('NO_PYTHON', `Debian's Python 3.11 (${PYTHON} and ${STDLIB}) is not installed on the daemon host`, 'apt-get install python3.11');

    const entry = await findEntry(ctx);
    await warnRequirements(ctx);
    ctx.progress({ step: 'compile', message: `python: entry ${entry}` });
    const entries = foreign ? await foreignRuntime(ctx) : await hostRuntime(ctx);
    entries.push({ kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 });

    const appFiles = await walkApp(ctx.sourceDir, await realpath(ctx.sourceDir), ctx.sourceDir, '/app');
    entries.push(...appFiles);
    ctx.progress({ step: 'compile', message: `python: ${entries.length - appFiles.length} runtime files, ${appFiles.length} app files` });

    return {
      entries,
      argv: [PYTHON, `/app/${entry}`, ...ctx.args],
      cwd: '/app',
      env: { PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: '/app' },
      kernelFragments: ['net'],
      defaultMemoryMb: 192, // measured minimum 122 MB: the uncompressed initramfs (~36 MB) is in RAM twice while it unpacks
    };
  },
};

/** The daemon host's interpreter, standard library and shared libraries (ldd runs on host files only). */
async function hostRuntime(ctx: CompileContext): Promise<RootEntry[]> {
  ctx.progress({ step: 'compile', message: `runtime: the daemon host's ${PYTHON} (${ctx.arch}); collecting ${STDLIB}` });
  const entries: RootEntry[] = [];
  const dynload: ForeignFile[] = [];
  await walkStdlib(hostStdlib(ctx.arch), STDLIB, true, entries, dynload);

  // extension modules: keep those whose libraries the host has, skip (with a warning) the rest
  const kept: string[] = [];
  for (const { source: so } of dynload) {
    try {
      await sharedLibraries(so);
      kept.push(so);
    } catch (e) {
      if (!(isUnikError(e) && e.code === 'UNIK_ERR_LIBRARY_NOT_FOUND')) throw e;
      ctx.progress({ step: 'compile', message: `warning: skipping ${so}: ${e.message}` });
    }
  }
  for (const so of kept) entries.push({ kind: 'file', path: so, source: so, mode: 0o755 });

  const libs = await elfClosure([PYTHON, ...kept], ctx.manifest.libraries ?? []);
  const have = new Set(entries.map((e) => e.path));
  entries.push({ kind: 'file', path: PYTHON, source: await realpath(PYTHON), mode: 0o755 });
  for (const l of libs) if (!have.has(l.path)) entries.push(l);
  return entries;
}

/**
 * Debian's python3.11 built for ctx.arch: its packages (and their dependencies) unpacked into
 * a root under the cache; the interpreter, standard library and libraries are read from there,
 * at the same guest paths as the host's, and nothing in them is run.
 */
async function foreignRuntime(ctx: CompileContext): Promise<RootEntry[]> {
  const arch = ctx.arch;
  const root = await realpath(await ensureDebianPackages(ctx.cacheDir, arch, PACKAGES, ctx.progress));
  const version = await debianPackageVersion(root, PACKAGES[0]!, arch);
  ctx.progress({ step: 'compile', message: `runtime: Debian's python3.11${version ? ` ${version}` : ''} for ${arch}; collecting ${STDLIB}` });
  const python = await fileInRoot(root, PYTHON);
  if (!python) throw unavailable('NO_PYTHON', `Debian's ${arch} package ${PACKAGES[0]} has no ${PYTHON}`, 'the Debian release of the daemon host must ship Python 3.11');
  await checkElfArch(python, arch, `Debian's ${arch} ${PYTHON}`);
  const { entries, dynload } = await foreignStdlib(root, arch);

  const kept = await extensionModules(root, dynload, arch, ctx.progress);
  for (const so of kept) entries.push({ kind: 'file', path: so.guestPath, source: so.source, mode: 0o755 });

  const interpreter = { source: python, guestPath: PYTHON };
  const libs = await foreignElfClosure(root, [interpreter, ...kept], ctx.manifest.libraries ?? [], arch);
  const have = new Set(entries.map((e) => e.path));
  entries.push({ kind: 'file', path: PYTHON, source: python, mode: 0o755 });
  for (const l of libs) if (!have.has(l.path)) entries.push(l);
  return entries;
}

/**
 * The extension modules whose libraries the packages have; the rest are skipped with a warning
 * (an app may never import them), as the host's build skips those the host lacks libraries for.
 */
export async function extensionModules(root: string, dynload: ForeignFile[], arch: Arch, progress: CompileContext['progress']): Promise<ForeignFile[]> {
  const kept: ForeignFile[] = [];
  for (const so of dynload) {
    try {
      await foreignElfClosure(root, [so], [], arch);
      kept.push(so);
    } catch (e) {
      if (!(isUnikError(e) && e.code === 'UNIK_ERR_LIBRARY_NOT_FOUND')) throw e;
      progress({ step: 'compile', message: `warning: skipping ${so.guestPath}: ${e.message}` });
    }
  }
  return kept;
}

/**
 * The standard library inside a root of unpacked packages: every path and symlink is resolved
 * with the root as "/", so a link to /etc or /usr means the root's, never the host's.
 */
export async function foreignStdlib(root: string, arch: Arch): Promise<{ entries: RootEntry[]; dynload: ForeignFile[] }> {
  const realRoot = await realpath(root);
  const top = await resolveInRoot(realRoot, STDLIB);
  if (!top || !(await fileInRoot(realRoot, `${STDLIB}/os.py`)))
    throw unavailable('NO_PYTHON', `Debian's ${arch} packages ${PACKAGES.join(', ')} have no standard library at ${STDLIB}`, 'the Debian release of the daemon host must ship Python 3.11');
  const entries: RootEntry[] = [];
  const dynload: ForeignFile[] = [];
  await walkStdlib(rootStdlib(realRoot, top, arch), STDLIB, true, entries, dynload);
  return { entries, dynload };
}

/** Where the standard library's files are read from, and what its symlinks lead to. */
interface StdlibSource {
  skip: Set<string>;
  /** the host folder holding a guest folder of the standard library */
  hostDir(guestDir: string): string;
  /** a symlink's target as a regular file: its guest path, and the host file that may be copied for it (if any) */
  follow(guestLink: string): Promise<{ guestPath: string; copy?: string } | undefined>;
}

/** The host's own: host paths are guest paths; a link out of the tree is copied only from a system directory. */
function hostStdlib(arch: Arch): StdlibSource {
  return {
    skip: stdlibSkip(arch),
    hostDir: (guestDir) => guestDir,
    async follow(link) {
      const target = await realpath(link).catch(() => undefined);
      if (!target || !(await stat(target)).isFile()) return undefined;
      return { guestPath: target, copy: containedIn(STDLIB, target) ? undefined : await hostSystemFile(target) };
    },
  };
}

/** A root's: links resolve inside it; one leading out of the tree is copied only from the root's system directories. */
function rootStdlib(realRoot: string, top: string, arch: Arch): StdlibSource {
  return {
    skip: stdlibSkip(arch),
    hostDir: (guestDir) => join(top, posix.relative(STDLIB, guestDir)),
    async follow(link) {
      const target = await fileInRoot(realRoot, link);
      if (!target) return undefined;
      const guestPath = `/${relative(realRoot, target)}`;
      return { guestPath, copy: SYSTEM_DIRS.some((d) => containedIn(d, guestPath)) ? target : undefined };
    },
  };
}

async function findEntry(ctx: CompileContext): Promise<string> {
  const given = ctx.manifest.entry;
  if (given) {
    const rel = normalize(given).replace(/^(\.\/)+/, '').replace(/^\/app\//, '');
    if (rel.startsWith('/') || (await whereIs(ctx.sourceDir, rel)) === 'outside') throw leavesUpload(given, 'unik.yaml entry:');
    const abs = await insideDir(ctx.sourceDir, rel);
    if (!abs || !(await stat(abs).then((s) => s.isFile(), () => false)))
      throw invalid('NO_ENTRY_POINT', `the entry ${JSON.stringify(given)} (unik.yaml entry:) is not a file in the app`, 'set entry: to a .py file in the app directory');
    return rel;
  }
  for (const name of ENTRIES) {
    const real = await insideDir(ctx.sourceDir, name);
    if (real && (await stat(real)).isFile()) return name;
  }
  throw invalid('NO_ENTRY_POINT', `no Python entry point: looked for ${ENTRIES.join(', ')} at the app's root and entry: in unik.yaml`, 'add app.py or set entry: in unik.yaml');
}

async function warnRequirements(ctx: CompileContext): Promise<void> {
  // its lines are shown in the progress: a requirements.txt linked out of the upload is never read
  const text = await readFileInside(ctx.sourceDir, 'requirements.txt');
  if (text === undefined) return;
  const reqs = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
  if (reqs.length)
    ctx.progress({ step: 'compile', message: `warning: requirements.txt is not installed (no pip in the image): ${reqs.join(', ')}; vendor them into the app directory` });
}

/** The standard library minus what an app server never needs; lib-dynload .so files go to `dynload`. */
async function walkStdlib(src: StdlibSource, dir: string, top: boolean, out: RootEntry[], dynload: ForeignFile[]): Promise<void> {
  const hostDir = src.hostDir(dir);
  for (const d of await readdir(hostDir, { withFileTypes: true })) {
    const p = posix.join(dir, d.name);
    const source = join(hostDir, d.name);
    if (d.name === '__pycache__' || d.name.endsWith('.pyc')) continue;
    if (top && src.skip.has(d.name)) continue;
    if (d.isDirectory()) await walkStdlib(src, p, false, out, dynload);
    else if (d.isSymbolicLink()) {
      // an in-tree link stays a link; one leaving the tree is copied if it is a system file,
      // else left out (Debian's sitecustomize.py → /etc only installs apport's hook)
      const target = await src.follow(p);
      if (!target) continue;
      if (containedIn(STDLIB, target.guestPath)) out.push({ kind: 'symlink', path: p, target: relativeTarget(p, target.guestPath) });
      else if (target.copy) out.push({ kind: 'file', path: p, source: target.copy, mode: 0o644 });
    } else if (d.isFile()) {
      if (dir === `${STDLIB}/lib-dynload` && d.name.endsWith('.so')) dynload.push({ source, guestPath: p });
      else out.push({ kind: 'file', path: p, source, mode: (await stat(source)).mode & 0o777 });
    }
  }
}

function relativeTarget(link: string, target: string): string {
  return dirname(link) === dirname(target) ? target.slice(dirname(link).length + 1) : target;
}

/**
 * The app directory, one entry per file. A symlink is followed only if where it really leads
 * is inside the app (a file is copied, a folder becomes a link to its place under /app); one
 * that leads out of it is refused, naming it.
 */
async function walkApp(root: string, realRoot: string, dir: string, to: string): Promise<RootEntry[]> {
  const out: RootEntry[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (APP_SKIP.has(d.name) || d.name.endsWith('.pyc')) continue;
    const p = join(dir, d.name);
    if (d.isSymbolicLink()) {
      const where = await whereIs(root, p);
      if (where === 'outside') throw leavesUpload(relative(root, p), 'the symlink');
      const real = where === 'inside' ? await insideDir(root, p) : undefined;
      if (!real) continue; // dangling: nothing to copy
      const st = await stat(real);
      if (st.isDirectory()) out.push({ kind: 'symlink', path: `${to}/${d.name}`, target: real === realRoot ? '/app' : `/app/${relative(realRoot, real)}` });
      else if (st.isFile()) out.push({ kind: 'file', path: `${to}/${d.name}`, source: real, mode: st.mode & 0o777 });
      continue;
    }
    const st = await lstat(p);
    if (st.isDirectory()) out.push(...(await walkApp(root, realRoot, p, `${to}/${d.name}`)));
    else if (st.isFile()) out.push({ kind: 'file', path: `${to}/${d.name}`, source: p, mode: st.mode & 0o777 });
  }
  return out;
}
