import { existsSync } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { invalid } from '../model/errors.js';
import { insideDir, leavesUpload, readFileInside, whereIs } from '../util/safe-path.js';
import { confinedLdd } from './confined.js';
import { NSSWITCH, elfClosure, isElf } from './elf-deps.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

const FALLBACK_ENTRIES = ['index.js', 'server.js', 'app.js'];

/**
 * Node.js: the app directory (with its node_modules) goes to /app as it is, and the runtime is
 * the daemon's own Node binary with the shared libraries it and the app's native addons load.
 * Nothing is installed or compiled: no npm, no shell in the image.
 */
export const nodejsCompiler: Compiler = {
  language: 'nodejs',
  looksFor: 'package.json',
  hostTools: ['node'],
  // the runtime is taken from the daemon host: images for the host's architecture only
  arches: HOST_ONLY,
  description: [
    `Node.js (linux base): the upload is an app directory with package.json at its root; it is copied to /app as it is, node_modules included (run \`npm install\` before pushing; nothing is installed at build time).`,
    `The runtime is the daemon's own Node (${process.version}) at /usr/bin/node, with its shared libraries and those of any native addon (*.node); no npm, no shell in the image.`,
    'Entry point: unik.yaml `entry:`, else package.json "main", else a "start" script of the form `node <file>`, else index.js, server.js or app.js.',
    'Build-time --args follow the script on the command line; NODE_ENV=production; env is given at run time.',
  ].join('\n'),

  async detect(dir) {
    return existsSync(join(dir, 'package.json'));
  },

  async compile(ctx: CompileContext): Promise<AppRoot> {
    const dir = ctx.sourceDir;
    const pkg = await readPackageJson(dir);
    const entry = await findEntry(dir, ctx.manifest.entry, pkg);
    ctx.progress({ step: 'compile', message: `node app, entry point ${entry}` });

    const appEntries: RootEntry[] = [];
    const addons: string[] = [];
    await walk(dir, '', appEntries, addons);

    const node = await realpath(process.execPath);
    ctx.progress({ step: 'compile', message: `runtime: ${node} (${process.version})${addons.length ? `, ${addons.length} native addon(s)` : ''}` });
    // native addons are the upload's ELF files: ldd on them runs confined (node's own too, harmlessly)
    const libs = await elfClosure([node, ...addons], ctx.manifest.libraries ?? [], { ldd: confinedLdd(ctx), alsoFrom: [dir] });
    const nodeMode = (await stat(node)).mode & 0o7777;

    return {
      entries: [
        { kind: 'file', path: '/usr/bin/node', source: node, mode: nodeMode | 0o555 },
        ...libs,
        { kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 },
        { kind: 'dir', path: '/app', mode: 0o755 },
        ...appEntries,
      ],
      argv: ['/usr/bin/node', `/app/${entry}`, ...ctx.args],
      cwd: '/app',
      env: { NODE_ENV: 'production' },
      kernelFragments: ['net'],
      defaultMemoryMb: 384,
    };
  },
};

interface PackageJson {
  main?: unknown;
  scripts?: { start?: unknown };
}

async function readPackageJson(dir: string): Promise<PackageJson> {
  // JSON errors quote the text: a package.json linked to a host file must never be read
  const text = await readFileInside(dir, 'package.json');
  if (text === undefined) throw invalid('NO_PACKAGE_JSON', 'no package.json at the root of the upload', 'run `npm init` in the app directory, or pick another --language');
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the top level is not an object');
    return v as PackageJson;
  } catch (e) {
    throw invalid('BAD_PACKAGE_JSON', `package.json is not valid: ${(e as Error).message}`, 'fix package.json (it must be a JSON object)');
  }
}

/**
 * A path inside the app, resolved the way Node resolves a "main". Node follows symlinks, so
 * the file it would load must really be inside the app: one that leads out is refused.
 */
async function resolveInApp(dir: string, p: string, field: string): Promise<string | undefined> {
  const rel = normalize(p.replace(/^\.\//, '')).replace(/\/+$/, '');
  if (!rel || rel === '.') return undefined;
  if (rel.split('/')[0] === '..' || rel.startsWith('/')) throw leavesUpload(p, field);
  for (const c of [rel, `${rel}.js`, `${rel}.cjs`, `${rel}.mjs`, `${rel}/index.js`, `${rel}/index.cjs`, `${rel}/index.mjs`]) {
    const where = await whereIs(dir, c);
    if (where === 'outside') throw leavesUpload(c, field);
    const real = where === 'inside' ? await insideDir(dir, c) : undefined;
    if (real && (await stat(real)).isFile()) return c;
  }
  return undefined;
}

/** The script `node` starts, relative to the app root. */
async function findEntry(dir: string, manifestEntry: string | undefined, pkg: PackageJson): Promise<string> {
  const looked: string[] = [];
  if (manifestEntry) {
    const e = await resolveInApp(dir, manifestEntry, 'unik.yaml entry:');
    if (!e) throw invalid('NO_ENTRY_POINT', `unik.yaml entry: ${JSON.stringify(manifestEntry)} is not a file in the app`, 'set entry: to a script in the app directory, relative to its root');
    return e;
  }
  if (typeof pkg.main === 'string' && pkg.main) {
    const e = await resolveInApp(dir, pkg.main, 'package.json "main"');
    if (e) return e;
    looked.push(`package.json "main" (${JSON.stringify(pkg.main)}: no such file)`);
  } else looked.push('package.json "main"');
  const start = pkg.scripts?.start;
  if (typeof start === 'string') {
    const file = startScriptFile(start);
    const e = file ? await resolveInApp(dir, file, 'package.json scripts.start') : undefined;
    if (e) return e;
    looked.push(`package.json scripts.start of the form \`node <file>\` (it is ${JSON.stringify(start)})`);
  } else looked.push('package.json scripts.start of the form `node <file>`');
  for (const f of FALLBACK_ENTRIES) if ((await resolveInApp(dir, f, 'the entry point')) === f) return f;
  looked.push(FALLBACK_ENTRIES.join(', '));
  throw invalid('NO_ENTRY_POINT', `no entry point for the Node app: looked for ${looked.join('; ')}`, 'set "main" in package.json or entry: in unik.yaml');
}

/** `node server.js`, `node --enable-source-maps dist/index.js` → the file; anything else → undefined. */
function startScriptFile(script: string): string | undefined {
  const words = script.trim().split(/\s+/);
  if (words[0] !== 'node') return undefined;
  if (/[;&|<>`$]/.test(script)) return undefined;
  return words.slice(1).find((w) => !w.startsWith('-'));
}

/** One root entry per file, directory and symlink of the app (.git left out); collects native addons. */
async function walk(root: string, rel: string, out: RootEntry[], addons: string[]): Promise<void> {
  const names = (await readdir(join(root, rel))).sort();
  for (const name of names) {
    if (!rel && name === '.git') continue;
    const r = rel ? `${rel}/${name}` : name;
    const host = join(root, r);
    const guest = `/app/${r}`;
    const st = await lstat(host);
    if (st.isSymbolicLink()) {
      out.push({ kind: 'symlink', path: guest, target: await readlink(host) });
    } else if (st.isDirectory()) {
      out.push({ kind: 'dir', path: guest, mode: st.mode & 0o7777 });
      await walk(root, r, out, addons);
    } else if (st.isFile()) {
      out.push({ kind: 'file', path: guest, source: host, mode: st.mode & 0o7777 });
      if (name.endsWith('.node') && (await isElf(host))) addons.push(host);
    }
    // sockets, fifos and devices in an upload are left out
  }
}
