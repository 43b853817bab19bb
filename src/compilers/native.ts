import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { buildFailed, invalid, unavailable } from '../core/errors.js';
import { execFileCollect, lastLines } from '../util/exec.js';
import { NSSWITCH, elfClosure, isElf, sharedLibraries } from './elf-deps.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

// C is built static with musl where it can be (one file, no loader, no libc in the image);
// C++ (no musl libstdc++ on Debian) and prebuilt programs are dynamic: their loader and
// libraries are copied in (src/compilers/elf-deps.ts).

const C_SOURCES = /\.c$/;
const CXX_SOURCES = /\.(cc|cpp|cxx)$/;

async function topFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
}

async function run(ctx: CompileContext, tool: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  ctx.progress({ step: 'compile', message: [tool, ...args].join(' ') });
  const r = await execFileCollect(tool, args, { cwd: ctx.sourceDir, env: { ...process.env, ...env }, onLine: (l) => ctx.progress({ step: 'compile', message: l }) }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_TOOLCHAIN', `${tool} is not installed on the daemon host`, 'apt-get install build-essential musl-tools (or run `npm run setup`)');
    throw e;
  });
  if (r.code !== 0) throw buildFailed('C_COMPILE', `${tool} failed:\n${lastLines(r.output, 40)}`, 'fix the errors above and build again');
}

/** Executables a Makefile left in the app directory (newest first). */
async function builtExecutables(dir: string, since: number): Promise<string[]> {
  const out: { path: string; t: number }[] = [];
  for (const name of await topFiles(dir)) {
    const p = join(dir, name);
    const st = await stat(p);
    if (st.mtimeMs >= since && st.mode & 0o111 && (await isElf(p))) out.push({ path: p, t: st.mtimeMs });
  }
  return out.sort((a, b) => b.t - a.t).map((x) => x.path);
}

/** The image entries for one program: itself, and if it is dynamic, its loader and libraries. */
async function programRoot(binary: string, guestPath: string, libraries: string[] = []): Promise<RootEntry[]> {
  const entries: RootEntry[] = [{ kind: 'file', path: guestPath, source: binary, mode: 0o755 }];
  if ((await sharedLibraries(binary)).length || libraries.length) {
    entries.push(...(await elfClosure([binary], libraries)));
    entries.push({ kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 });
  }
  return entries;
}

function nativeCompiler(language: 'c' | 'cpp'): Compiler {
  const cxx = language === 'cpp';
  return {
    language,
    looksFor: cxx ? '*.cpp/*.cc' : 'Makefile or *.c',
    hostTools: cxx ? ['g++', 'make'] : ['musl-gcc', 'make'],
    description: cxx
      ? 'C++: a Makefile project (make with CXX=g++) or plain *.cpp/*.cc sources; linked dynamically, with exactly the shared libraries it loads copied in.'
      : 'C: a Makefile project (make with CC="musl-gcc -static") or plain *.c sources (musl-gcc -static): one static binary. unik.yaml entry: names the program when a Makefile builds several.',
    async detect(dir) {
      const files = await topFiles(dir);
      if (cxx) return files.some((f) => CXX_SOURCES.test(f));
      return files.includes('Makefile') || files.includes('makefile') || files.some((f) => C_SOURCES.test(f));
    },
    async compile(ctx): Promise<AppRoot> {
      const files = await topFiles(ctx.sourceDir);
      const started = Date.now() - 1000;
      let binary: string;
      const makefile = files.includes('Makefile') || files.includes('makefile');
      if (makefile) {
        await run(ctx, 'make', ['-j2', cxx ? 'CXX=g++' : 'CC=musl-gcc -static', ...(cxx ? [] : ['LDFLAGS=-static'])]);
        const entry = ctx.manifest.entry;
        if (entry) {
          binary = join(ctx.sourceDir, entry);
          if (!(await isElf(binary))) throw invalid('NO_ENTRY_POINT', `unik.yaml entry ${entry} is not a program the Makefile built`);
        } else {
          const made = await builtExecutables(ctx.sourceDir, started);
          if (made.length === 0) throw invalid('NO_ENTRY_POINT', 'make built no executable in the app directory', 'make the default target build the program, or set entry: in unik.yaml');
          if (made.length > 1) throw invalid('NO_ENTRY_POINT', `make built several programs (${made.map((m) => basename(m)).join(', ')})`, 'name the one to run with entry: in unik.yaml');
          binary = made[0]!;
        }
      } else {
        const sources = files.filter((f) => (cxx ? CXX_SOURCES : C_SOURCES).test(f));
        if (!sources.length) throw invalid('NO_SOURCES', `no ${cxx ? 'C++' : 'C'} sources (${cxx ? '*.cpp, *.cc' : '*.c'}) and no Makefile in the upload`);
        binary = join(ctx.workDir, ctx.manifest.entry ?? 'app');
        if (cxx) await run(ctx, 'g++', ['-O2', '-o', binary, ...sources]);
        else await run(ctx, 'musl-gcc', ['-static', '-O2', '-o', binary, ...sources]);
      }
      const name = basename(binary);
      return {
        entries: await programRoot(binary, `/app/${name}`, ctx.manifest.libraries),
        argv: [`/app/${name}`, ...ctx.args],
        cwd: '/app',
        env: {},
        kernelFragments: ['net'],
        defaultMemoryMb: cxx ? 64 : 32,
      };
    },
  };
}

export const cCompiler = nativeCompiler('c');
export const cppCompiler = nativeCompiler('cpp');

/** Any Linux program, e.g. one from a Debian package: unik.yaml `entry:` names it. */
export const elfCompiler: Compiler = {
  language: 'elf',
  looksFor: 'unik.yaml with language: elf and entry:',
  hostTools: ['ldd'],
  description: 'Any Linux executable: unik.yaml entry: is a program in the upload, or an absolute path on the daemon host under /usr, /bin, /sbin, /opt (a binary from a Debian package). Its loader and shared libraries are copied in; list libraries it loads with dlopen under libraries:, and data files under files:.',
  async detect() {
    return false; // never guessed: ask for it with --language elf or unik.yaml
  },
  async compile(ctx): Promise<AppRoot> {
    const entry = ctx.manifest.entry;
    if (!entry) throw invalid('NO_ENTRY_POINT', 'an elf image needs the program: entry: in unik.yaml', 'e.g. entry: /usr/bin/webfsd, or a file in the upload');
    const hostPath = entry.startsWith('/');
    if (hostPath && !['/usr/', '/bin/', '/sbin/', '/opt/'].some((d) => entry.startsWith(d)))
      throw invalid('FILE_NOT_ALLOWED', `entry ${entry} is outside the host directories programs may come from (/usr /bin /sbin /opt)`);
    const binary = hostPath ? entry : join(ctx.sourceDir, entry);
    if (!existsSync(binary)) throw invalid('NO_ENTRY_POINT', `entry ${entry} does not exist${hostPath ? ' on the daemon host (install its package there)' : ' in the upload'}`);
    if (!(await isElf(binary))) throw invalid('NOT_AN_ELF', `entry ${entry} is not a Linux executable (ELF)`, 'scripts need their interpreter: use the language of the script instead');
    const guestPath = hostPath ? entry : `/app/${basename(entry)}`;
    return {
      entries: await programRoot(binary, guestPath, ctx.manifest.libraries),
      argv: [guestPath, ...ctx.args],
      cwd: '/',
      env: {},
      kernelFragments: ['net'],
      defaultMemoryMb: 64,
    };
  },
};
