import { existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildFailed, invalid, unavailable } from '../core/errors.js';
import { execFileCollect, lastLines } from '../util/exec.js';
import type { AppRoot, CompileContext, Compiler } from './types.js';

/** Go: a module directory becomes one static binary (CGO off), the app's only file. */
export const goCompiler: Compiler = {
  language: 'go',
  looksFor: 'go.mod',
  hostTools: ['go'],
  description: [
    'Go (linux base): the upload must be a Go module (go.mod at its root) whose root package is `main`.',
    'It is built with CGO_ENABLED=0 into a static binary; the image holds only the kernel, the unik init and that binary.',
    'Dependencies come from vendor/ if present, else from the module cache / GOPROXY of the daemon host.',
    'Build-time --args become the program arguments; env is given at run time.',
  ].join('\n'),

  async detect(dir) {
    return existsSync(join(dir, 'go.mod'));
  },

  async compile(ctx: CompileContext): Promise<AppRoot> {
    const gomod = join(ctx.sourceDir, 'go.mod');
    if (!existsSync(gomod))
      throw invalid('NO_GO_MODULE', 'no Go module in the upload: go.mod is missing at its root', 'run `go mod init <name>` in the app directory, or pick another --language');
    const module = /^module\s+(\S+)/m.exec(await readFile(gomod, 'utf8'))?.[1]?.replace(/"/g, '');
    if (!module) throw invalid('BAD_GO_MODULE', 'go.mod has no module line');
    const name = module.split('/').pop()!.replace(/[^a-zA-Z0-9_.-]/g, '_') || 'app';
    const out = join(ctx.workDir, name);
    await mkdir(join(ctx.cacheDir, 'go-build'), { recursive: true });
    ctx.progress({ step: 'compile', message: `go build ${module} (CGO_ENABLED=0, static)` });
    const env = {
      ...process.env,
      CGO_ENABLED: '0',
      GOOS: 'linux',
      GOARCH: 'amd64',
      GOCACHE: join(ctx.cacheDir, 'go-build'),
      GOPATH: process.env.GOPATH || join(ctx.cacheDir, 'gopath'),
      GOTOOLCHAIN: 'local',
      HOME: process.env.HOME || ctx.cacheDir,
    };
    const r = await execFileCollect('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], { cwd: ctx.sourceDir, env, onLine: (l) => ctx.progress({ step: 'compile', message: l }) }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw unavailable('NO_GO', 'the Go toolchain is not installed on the daemon host', 'apt-get install golang-go (or run `npm run setup`)');
      throw e;
    });
    if (r.code !== 0) throw buildFailed('GO_COMPILE', `go build failed:\n${lastLines(r.output, 40)}`, 'fix the compile errors above and build again');
    if (!(await isElfExecutable(out)))
      throw invalid('GO_NOT_MAIN', `go build produced no executable: the module root package is not \`package main\``, 'put the main package at the module root');
    return {
      entries: [{ kind: 'file', path: `/app/${name}`, source: out, mode: 0o755 }],
      argv: [`/app/${name}`, ...ctx.args],
      cwd: '/',
      env: {},
      kernelFragments: ['net'],
      defaultMemoryMb: 64,
    };
  },
};

async function isElfExecutable(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
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
