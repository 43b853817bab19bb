import { constants, existsSync } from 'node:fs';
import { appendFile, copyFile, lchown, link, lstat, mkdir, open, readFile, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { buildFailed, invalid, unavailable } from '../model/errors.js';
import { insideDir, readFileInside } from '../util/safe-path.js';
import { execFileCollect, lastLines } from '../util/exec.js';
import { buildUser, sandboxed } from '../util/sandbox.js';
import { runConfined } from './confined.js';
import type { AppRoot, CompileContext, Compiler } from './types.js';
import type { Arch } from '../model/arch.js';
import { checkElfArch } from './elf-deps.js';

/** How every Go build here compiles: the standard library's cache entries depend on it. Go cross-compiles by itself. */
function goTarget(arch: Arch): Record<string, string> {
  return { CGO_ENABLED: '0', GOOS: 'linux', GOARCH: arch, GOTOOLCHAIN: 'local', GOPROXY: 'off', GOTELEMETRY: 'off', GOENV: 'off' };
}
const GO_FLAGS = ['-trimpath'];
const NOT_INSTALLED = () => unavailable('NO_GO', 'the Go toolchain is not installed on the daemon host', 'apt-get install golang-go (or run `npm run setup`)');

/** Go: a module directory becomes one static binary (CGO off), the app's only file. */
export const goCompiler: Compiler = {
  language: 'go',
  looksFor: 'go.mod',
  hostTools: [{ name: 'go', pkg: 'golang-go' }],
  arches: ['amd64', 'arm64'],
  description: [
    'Go (linux base): the upload must be a Go module (go.mod at its root) whose root package is `main`.',
    'It is built with CGO_ENABLED=0 into a static binary; the image holds only the kernel, the unik init and that binary.',
    'The build is confined and has no network: dependencies come from vendor/ if present, else from the daemon host\'s module cache (read-only).',
    'Build-time --args become the program arguments; env is given at run time.',
  ].join('\n'),

  async detect(dir) {
    return existsSync(join(dir, 'go.mod'));
  },

  async compile(ctx: CompileContext): Promise<AppRoot> {
    const gomod = await readFileInside(ctx.sourceDir, 'go.mod');
    if (gomod === undefined)
      throw invalid('NO_GO_MODULE', 'no Go module in the upload: go.mod is missing at its root', 'run `go mod init <name>` in the app directory, or pick another --language');
    const module = /^module\s+(\S+)/m.exec(gomod)?.[1]?.replace(/"/g, '');
    if (!module) throw invalid('BAD_GO_MODULE', 'go.mod has no module line');
    const name = module.split('/').pop()!.replace(/[^a-zA-Z0-9_.-]/g, '_').replace(/^\.+/, '') || 'app';
    const out = join(ctx.workDir, name);
    const hostGopath = process.env.GOPATH || join(ctx.cacheDir, 'gopath');
    const gopath = existsSync(hostGopath) ? hostGopath : undefined;
    const vendored = !!(await insideDir(ctx.sourceDir, 'vendor/modules.txt'));
    const env: Record<string, string> = {
      ...goTarget(ctx.arch),
      // the host's module cache, read-only; nothing is downloaded (no network, GOPROXY=off)
      GOPATH: gopath ?? '/tmp/gopath',
      GOFLAGS: vendored ? '-mod=vendor' : '-mod=readonly',
    };
    const cache = await buildCache(ctx, env, gopath);
    ctx.progress({ step: 'compile', message: `go build ${module} (GOARCH=${ctx.arch}, CGO_ENABLED=0, static${vendored ? ', vendor/' : ''})` });
    const r = await runConfined(ctx, 'go', ['build', ...GO_FLAGS, '-ldflags=-s -w', '-o', out, '.'], { env: { ...env, GOCACHE: cache }, writable: [cache], readable: gopath ? [gopath] : [] }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw NOT_INSTALLED();
      throw e;
    });
    if (r.code !== 0) throw buildFailed('GO_COMPILE', `go build failed:\n${lastLines(r.output, 40)}`, 'fix the compile errors above and build again');
    const binary = await insideDir(ctx.workDir, out);
    if (!binary || !(await isElfExecutable(binary)))
      throw invalid('GO_NOT_MAIN', `go build produced no executable: the module root package is not \`package main\``, 'put the main package at the module root');
    await checkElfArch(binary, ctx.arch, 'the Go program');
    return {
      entries: [{ kind: 'file', path: `/app/${name}`, source: binary, mode: 0o755 }],
      argv: [`/app/${name}`, ...ctx.args],
      cwd: '/',
      env: {},
      kernelFragments: ['net'],
      defaultMemoryMb: 64,
    };
  },
};

/**
 * This build's GOCACHE. Go trusts its cache blindly, so a build never writes the shared one:
 * the shared cache holds only standard-library packages, compiled by builds of nothing but
 * those packages (no upload in them) and then owned by root. Each build starts from hard links
 * to it (files it cannot change: root's, 0644) in a folder of its own that goes with the build.
 */
async function buildCache(ctx: CompileContext, env: Record<string, string>, gopath: string | undefined): Promise<string> {
  const mine = join(ctx.buildDir, 'gocache');
  const shared = await sharedCache(ctx);
  await linkCache(shared, mine);
  await warmStd(ctx, shared, await stdImports(ctx, { ...env, GOCACHE: mine }, gopath));
  // what the warm-up added
  await linkCache(shared, mine);
  return mine;
}

async function sharedCache(ctx: CompileContext): Promise<string> {
  const version = await execFileCollect('go', ['version']).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw NOT_INSTALLED();
    throw e;
  });
  const key = createHash('sha256').update(JSON.stringify([version.output.trim(), goTarget(ctx.arch), GO_FLAGS])).digest('hex').slice(0, 16);
  const dir = join(ctx.cacheDir, 'go-std', key);
  await mkdir(join(dir, 'cache'), { recursive: true, mode: 0o755 });
  return dir;
}

/**
 * A folder the daemon (root) is about to give to the build user or write in: made when missing,
 * else it must be a real directory. The build user had it before: a symlink it left there would
 * have root chown or write wherever it points.
 */
export async function realDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (!(await lstat(dir)).isDirectory())
    throw buildFailed('GO_CACHE_TAMPERED', `the build cache folder ${dir} is not a directory (a symlink left by the build?)`, 'build again; a build cannot redirect the daemon through its cache');
}

/** Hard-links every file of `shared`/cache not yet in `to`; the folders become the build user's, the files stay root's. */
export async function linkCache(shared: string, to: string): Promise<void> {
  const u = buildUser();
  const walk = async (from: string, dest: string) => {
    await realDirectory(dest);
    await lchown(dest, u.uid, u.gid);
    for (const e of await readdir(from, { withFileTypes: true })) {
      const a = join(from, e.name);
      const b = join(dest, e.name);
      if (e.isDirectory()) await walk(a, b);
      else if (e.isFile() && e.name !== 'trim.txt' && !(await lstat(b).then(() => true, () => false)))
        // a copy when on another disk; never through anything (a symlink) at b
        await link(a, b).catch(() => copyFile(a, b, constants.COPYFILE_EXCL));
    }
  };
  await walk(join(shared, 'cache'), to);
}

/** The standard-library packages the app imports, as `go list` (confined: it reads the upload) says. */
async function stdImports(ctx: CompileContext, env: Record<string, string>, gopath: string | undefined): Promise<string[]> {
  const r = await runConfined(ctx, 'go', ['list', '-deps', '-f', '{{if .Standard}}{{.ImportPath}}{{end}}', '.'], { env, quiet: true, writable: [env.GOCACHE!], readable: gopath ? [gopath] : [] });
  if (r.code !== 0) return []; // go build will say what is wrong
  // untrusted text: only names that look like standard packages go on to the warm-up
  return r.output.split('\n').map((l) => l.trim()).filter((l) => /^[a-z0-9][a-z0-9_/.-]{0,200}$/.test(l) && !l.includes('..'));
}

/** Compiles the packages the shared cache lacks, in a build of nothing else, and adds the result to it. */
async function warmStd(ctx: CompileContext, shared: string, pkgs: string[]): Promise<void> {
  const listFile = join(shared, 'packages.txt');
  const have = new Set((await readFile(listFile, 'utf8').catch(() => '')).split('\n'));
  const missing = pkgs.filter((p) => !have.has(p));
  if (!missing.length) return;
  const tmp = join(ctx.buildDir, 'go-std-warm');
  await realDirectory(tmp);
  await linkCache(shared, join(tmp, 'cache'));
  await lchown(tmp, buildUser().uid, buildUser().gid);
  ctx.progress({ step: 'compile', message: `go: compiling ${missing.length} standard-library package(s) into the shared build cache` });
  const r = await sandboxed('go', ['build', ...GO_FLAGS, ...missing], {
    cwd: tmp,
    writable: [tmp],
    env: { ...goTarget(ctx.arch), GOCACHE: join(tmp, 'cache'), GOPATH: '/tmp/gopath', GOFLAGS: '' },
    onLine: (l) => ctx.progress({ step: 'compile', message: l }),
  });
  if (r.code !== 0) {
    ctx.progress({ step: 'compile', message: `warning: the standard library could not be cached (${lastLines(r.output, 3)}); the app build compiles it itself` });
    return;
  }
  // the new entries (one link only: not from the shared cache) become root's, then shared
  const promote = async (from: string, dest: string) => {
    await mkdir(dest, { recursive: true, mode: 0o755 });
    for (const e of await readdir(from, { withFileTypes: true })) {
      const a = join(from, e.name);
      const b = join(dest, e.name);
      if (e.isDirectory()) await promote(a, b);
      else if (e.isFile() && e.name !== 'trim.txt' && (await lstat(a)).nlink === 1) {
        // through a descriptor opened without following a symlink: root's, 0644, whatever is at a now
        const fh = await open(a, constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          const st = await fh.stat();
          if (!st.isFile() || st.nlink !== 1) continue;
          await fh.chown(0, 0);
          await fh.chmod(0o644);
        } finally {
          await fh.close();
        }
        await link(a, b).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err; // another build added the same entry
        });
      }
    }
  };
  await promote(join(tmp, 'cache'), join(shared, 'cache'));
  await appendFile(listFile, missing.join('\n') + '\n');
}

async function isElfExecutable(path: string): Promise<boolean> {
  if (!(await lstat(path).then((s) => s.isFile(), () => false))) return false;
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(18);
    await fh.read(b, 0, 18, 0);
    // ELF magic, and e_type 2 (executable) or 3 (PIE)
    return b.readUInt32BE(0) === 0x7f454c46 && (b.readUInt16LE(16) === 2 || b.readUInt16LE(16) === 3);
  } finally {
    await fh.close();
  }
}
