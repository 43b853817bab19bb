import { existsSync } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join, normalize, posix } from 'node:path';
import { invalid, isUnikError } from '../model/errors.js';
import type { Arch } from '../model/arch.js';
import { containedIn, insideDir, leavesUpload, readFileInside, whereIs } from '../util/safe-path.js';
import { confinedLdd } from './confined.js';
import { debianPackageVersion, ensureDebianPackages } from './debian-packages.js';
import { NSSWITCH, checkElfArch, elfClosure, fileInRoot, foreignElfClosure, isElf, type ForeignFile } from './elf-deps.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

const FALLBACK_ENTRIES = ['index.js', 'server.js', 'app.js'];

const ARCHES: readonly Arch[] = ['amd64', 'arm64'];
/** the architecture(s) the daemon host is not: their runtime is Debian's nodejs package built for them */
const OTHER_ARCHES = ARCHES.filter((a) => !HOST_ONLY.includes(a));
const GUEST_NODE = '/usr/bin/node';

/**
 * Node.js: the app directory (with its node_modules) goes to /app as it is. The runtime is the
 * daemon's own Node binary for the host's architecture; for the other one it is Debian's nodejs
 * package built for it (downloaded and unpacked, never installed or run). Either way it comes
 * with the shared libraries it and the app's native addons load. Nothing is installed or
 * compiled: no npm, no shell in the image.
 */
export const nodejsCompiler: Compiler = {
  language: 'nodejs',
  looksFor: 'package.json',
  // the daemon's own Node
  hostTools: [{ name: process.execPath, pkg: 'nodejs' }],
  arches: ARCHES,
  description: [
    `Node.js (linux base): the upload is an app directory with package.json at its root; it is copied to /app as it is, node_modules included (run \`npm install\` before pushing; nothing is installed at build time).`,
    `For ${HOST_ONLY[0]} (the daemon host's architecture) the runtime is the daemon's own Node (${process.version}) at /usr/bin/node, with its shared libraries and those of any native addon (*.node); no npm, no shell in the image.`,
    `For ${OTHER_ARCHES.join(', ')} the runtime is Debian's nodejs package built for it, with its dependencies (downloaded, never installed): its own Node version, that of the daemon host's Debian release, which the build names. Native addons must be built for that architecture and that Node (or use Node-API).`,
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
    const addons: ForeignFile[] = [];
    await walk(dir, '', appEntries, addons);

    const runtime = ctx.arch === HOST_ONLY[0] ? await hostRuntime(ctx, addons) : await debianRuntime(ctx, addons);
    // a library the upload ships is already among the app's files
    const appPaths = new Set(appEntries.map((e) => e.path));

    return {
      entries: [
        ...runtime.filter((e) => !appPaths.has(e.path)),
        { kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 },
        { kind: 'dir', path: '/app', mode: 0o755 },
        ...appEntries,
      ],
      argv: [GUEST_NODE, `/app/${entry}`, ...ctx.args],
      cwd: '/app',
      env: { NODE_ENV: 'production' },
      kernelFragments: ['net'],
      defaultMemoryMb: 384,
    };
  },
};

/** The daemon's own Node binary and the host libraries it and the addons load. */
async function hostRuntime(ctx: CompileContext, addons: ForeignFile[]): Promise<RootEntry[]> {
  const node = await realpath(process.execPath);
  ctx.progress({ step: 'compile', message: `runtime: ${node} (${process.version})${addonCount(addons)}` });
  // native addons are the upload's ELF files: ldd on them runs confined (node's own too, harmlessly)
  const libs = await elfClosure([node, ...addons.map((a) => a.source)], ctx.manifest.libraries ?? [], { ldd: confinedLdd(ctx), alsoFrom: [ctx.sourceDir] });
  const nodeMode = (await stat(node)).mode & 0o7777;
  return [{ kind: 'file', path: GUEST_NODE, source: node, mode: nodeMode | 0o555 }, ...libs];
}

function addonCount(addons: ForeignFile[]): string {
  return addons.length ? `, ${addons.length} native addon(s)` : '';
}

/**
 * Debian's nodejs for ctx.arch: /usr/bin/node of the unpacked package, the loader and libraries
 * its ELF headers (and the addons') name, and the JavaScript files its libnode loads at run
 * time. Everything comes from the package root or the upload; nothing of the host's goes in.
 */
async function debianRuntime(ctx: CompileContext, addons: ForeignFile[]): Promise<RootEntry[]> {
  const arch = ctx.arch;
  // refused before anything is downloaded
  for (const a of addons) await checkAddonArch(a, arch);
  ctx.progress({ step: 'compile', message: `taking the runtime of ${arch} images from Debian's nodejs package for ${arch}` });
  const root = await ensureDebianPackages(ctx.cacheDir, arch, ['nodejs'], ctx.progress);
  const node = await fileInRoot(root, GUEST_NODE);
  if (!node) throw invalid('NO_RUNTIME', `Debian's ${arch} nodejs package has no ${GUEST_NODE}`, 'the Debian release of the daemon host may package Node.js differently; build for the host\'s architecture');
  await checkElfArch(node, arch, `Debian's ${arch} ${GUEST_NODE}`);
  const version = await debianPackageVersion(root, 'nodejs', arch);
  const named = version ? `${upstreamVersion(version)} for ${arch} (package ${version})` : `for ${arch} (its changelog names no version)`;
  ctx.progress({ step: 'compile', message: `runtime: Debian's nodejs ${named}${addonCount(addons)}` });
  if (addons.length) ctx.progress({ step: 'compile', message: `native addons must be built for ${arch} and this Node's ABI (or use Node-API)` });
  const programs: ForeignFile[] = [{ source: node, guestPath: GUEST_NODE }, ...addons];
  const libs = await foreignElfClosure(root, programs, ctx.manifest.libraries ?? [], arch, { mounts: [{ guestDir: '/app', hostDir: ctx.sourceDir }] });
  const builtins = await sharedBuiltins(root, libs);
  const nodeMode = (await stat(node)).mode & 0o7777;
  return [{ kind: 'file', path: GUEST_NODE, source: node, mode: nodeMode | 0o555 }, ...libs, ...builtins];
}

/** An addon for another machine would fail to load in the guest: refused, named, with what to do. */
async function checkAddonArch(addon: ForeignFile, arch: Arch): Promise<void> {
  try {
    await checkElfArch(addon.source, arch, `the native addon ${addon.guestPath.slice('/app/'.length)}`);
  } catch (e) {
    if (!isUnikError(e) || e.code !== 'UNIK_ERR_WRONG_ARCH') throw e;
    throw invalid('WRONG_ARCH', e.message, `install the app's dependencies for ${arch} before pushing (npm install on a ${arch} machine, or the package's prebuilt ${arch} binary), or build for ${HOST_ONLY[0]}`);
  }
}

/** Debian's version without epoch, repackaging suffix and revision: 1:18.20.4+dfsg-1~deb12u3 → 18.20.4 */
function upstreamVersion(debian: string): string {
  return debian.replace(/^\d+:/, '').replace(/[+~-].*$/, '');
}

/** libnode built by Debian reads some of its own JavaScript (acorn, undici…) from files at run time */
const SHARED_BUILTIN_KEY = 'NODE_SHARED_BUILTIN_';
const SHARED_BUILTIN = /^NODE_SHARED_BUILTIN_[A-Z0-9_]{1,80}_PATH=(\/[A-Za-z0-9_./@+-]{1,300})/;
const MAX_SHARED_BUILTINS = 64;

/** libnode is tens of MB; a larger file is not Debian's and is not read */
const MAX_LIBNODE_BYTES = 256 * 1024 * 1024;
const SCAN_CHUNK = 4 * 1024 * 1024;

/** The builtin paths a libnode names, read in chunks (overlapping by a record's length) up to MAX_LIBNODE_BYTES. */
async function builtinPaths(file: string): Promise<string[]> {
  const found: string[] = [];
  const fh = await open(file, 'r');
  try {
    const size = Math.min((await fh.stat()).size, MAX_LIBNODE_BYTES);
    const overlap = 512;
    const buf = Buffer.alloc(SCAN_CHUNK + overlap);
    for (let pos = 0; pos < size; pos += SCAN_CHUNK) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      const chunk = buf.subarray(0, bytesRead);
      // a record starting in the overlap is found again by the next chunk
      const limit = pos + SCAN_CHUNK < size ? SCAN_CHUNK : bytesRead;
      for (let at = chunk.indexOf(SHARED_BUILTIN_KEY); at >= 0 && at < limit && found.length < MAX_SHARED_BUILTINS; at = chunk.indexOf(SHARED_BUILTIN_KEY, at + 1)) {
        const m = SHARED_BUILTIN.exec(chunk.subarray(at, at + 400).toString('latin1'));
        if (m) found.push(posix.normalize(m[1]!));
      }
    }
  } finally {
    await fh.close();
  }
  return found;
}

/**
 * The files libnode's build configuration (a string in the library) names as shared builtins,
 * taken from the package root at the same paths; a library without that configuration has none.
 */
export async function sharedBuiltins(root: string, libs: RootEntry[]): Promise<RootEntry[]> {
  const realRoot = await realpath(root);
  const taken = new Set(libs.map((l) => l.path).concat(GUEST_NODE));
  const paths = new Set<string>();
  for (const lib of libs) {
    // only Debian's own libnode: one the upload ships (found through /app) names nothing
    if (lib.kind !== 'file' || !/\/libnode\.so[.0-9]*$/.test(lib.path) || !containedIn(realRoot, lib.source)) continue;
    for (const p of await builtinPaths(lib.source)) if (paths.size < MAX_SHARED_BUILTINS) paths.add(p);
  }
  const out: RootEntry[] = [];
  for (const p of paths) {
    if (taken.has(p)) continue; // never replaces a file already going in
    const source = await fileInRoot(root, p);
    if (!source) throw invalid('NO_RUNTIME', `Debian's libnode loads ${p} at run time, and no package of its closure has it`, 'the Debian release of the daemon host may package Node.js differently; build for the host\'s architecture');
    out.push({ kind: 'file', path: p, source, mode: 0o644 });
  }
  return out;
}

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
async function walk(root: string, rel: string, out: RootEntry[], addons: ForeignFile[]): Promise<void> {
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
      if (name.endsWith('.node') && (await isElf(host))) addons.push({ source: host, guestPath: guest });
    }
    // sockets, fifos and devices in an upload are left out
  }
}
