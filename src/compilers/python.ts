import { existsSync } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { invalid, isUnikError, unavailable } from '../model/errors.js';
import { containedIn, hostSystemFile, insideDir, leavesUpload, readFileInside, whereIs } from '../util/safe-path.js';
import { elfClosure, NSSWITCH, sharedLibraries } from './elf-deps.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

/** Debian's interpreter and standard library, at the same paths in the image as on the host. */
const PYTHON = '/usr/bin/python3.11';
const STDLIB = '/usr/lib/python3.11';
/** top-level parts of the standard library an app server never needs */
const STDLIB_SKIP = new Set(['test', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', 'config-3.11-x86_64-linux-gnu']);
const APP_SKIP = new Set(['.git', '__pycache__', '.venv']);
const ENTRIES = ['__main__.py', 'app.py', 'main.py', 'server.py'];

/** Python: the app's files under /app, run by Debian's python3.11 with its standard library. */
export const pythonCompiler: Compiler = {
  language: 'python',
  looksFor: 'requirements.txt, *.py',
  hostTools: ['python3.11'],
  // the runtime is taken from the daemon host: images for the host's architecture only
  arches: HOST_ONLY,
  description: [
    "Python 3.11 (linux base): the upload is a directory of .py files; it goes to /app, run by the daemon host's Debian /usr/bin/python3.11.",
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
    if (!existsSync(PYTHON) || !existsSync(join(STDLIB, 'os.py')))
      throw unavailable('NO_PYTHON', `Debian's Python 3.11 (${PYTHON} and ${STDLIB}) is not installed on the daemon host`, 'apt-get install python3.11');

    const entry = await findEntry(ctx);
    await warnRequirements(ctx);

    ctx.progress({ step: 'compile', message: `python: entry ${entry}; collecting ${STDLIB}` });
    const entries: RootEntry[] = [];
    const dynload: string[] = [];
    await walkStdlib(STDLIB, true, entries, dynload);

    // extension modules: keep those whose libraries the host has, skip (with a warning) the rest
    const kept: string[] = [];
    for (const so of dynload) {
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
async function walkStdlib(dir: string, top: boolean, out: RootEntry[], dynload: string[]): Promise<void> {
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.name === '__pycache__' || d.name.endsWith('.pyc')) continue;
    if (top && STDLIB_SKIP.has(d.name)) continue;
    if (d.isDirectory()) await walkStdlib(p, false, out, dynload);
    else if (d.isSymbolicLink()) {
      // an in-tree link stays a link; one leaving the tree is copied if it is a system file,
      // else left out (Debian's sitecustomize.py → /etc only installs apport's hook)
      const target = await realpath(p).catch(() => undefined);
      if (!target || !(await stat(target)).isFile()) continue;
      if (containedIn(STDLIB, target)) out.push({ kind: 'symlink', path: p, target: relativeTarget(p, target) });
      else if (await hostSystemFile(target)) out.push({ kind: 'file', path: p, source: target, mode: 0o644 });
    } else if (d.isFile()) {
      if (dirname(p) === join(STDLIB, 'lib-dynload') && d.name.endsWith('.so')) dynload.push(p);
      else out.push({ kind: 'file', path: p, source: p, mode: (await stat(p)).mode & 0o777 });
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
