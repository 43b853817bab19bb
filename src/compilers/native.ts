import { readdir, stat } from 'node:fs/promises';
import { basename, join, normalize } from 'node:path';
import { buildFailed, invalid, unavailable } from '../model/errors.js';
import { containedIn, hostSystemFile, insideDir, leavesUpload, SYSTEM_DIRS, whereIs } from '../util/safe-path.js';
import { lastLines } from '../util/exec.js';
import { confinedLdd, runConfined } from './confined.js';
import { NSSWITCH, checkElfArch, elfClosure, fileInRoot, foreignElfClosure, hasInterpreter, isElf, sharedLibraries, type Ldd } from './elf-deps.js';
import { debianOwnerOf, ensureDebianPackages, mergedUsrAlias } from './debian-packages.js';
import type { Arch } from '../model/arch.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

// C is built static with musl where it can be (one file, no loader, no libc in the image);
// C++ (no musl libstdc++ on Debian) and prebuilt programs are dynamic: their loader and
// libraries are copied in (src/compilers/elf-deps.ts). For arm64, both are cross-built static
// with Debian's aarch64 gcc and glibc: no arm64 loader or library is read from this host.

/** The compilers of each architecture: C, C++, and their package. */
const TOOLCHAIN: Record<Arch, { cc: string; cxx: string[]; pkg: string }> = {
  amd64: { cc: 'musl-gcc', cxx: ['g++'], pkg: 'build-essential musl-tools' },
  arm64: { cc: 'aarch64-linux-gnu-gcc', cxx: ['aarch64-linux-gnu-g++', '-static'], pkg: 'gcc-aarch64-linux-gnu g++-aarch64-linux-gnu' },
};

const C_SOURCES = /\.c$/;
const CXX_SOURCES = /\.(cc|cpp|cxx)$/;

async function topFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
}

/** Runs a build tool on the upload, confined: a Makefile is the upload's own code. */
async function run(ctx: CompileContext, tool: string, args: string[]): Promise<void> {
  ctx.progress({ step: 'compile', message: [tool, ...args].join(' ') });
  const r = await runConfined(ctx, tool, args).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_TOOLCHAIN', `${tool} is not installed on the daemon host`, `apt-get install ${TOOLCHAIN[ctx.arch].pkg} (or run \`npm run setup\`)`);
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

/**
 * The image entries for one program: itself, and if it is dynamic, its loader and libraries.
 * `binary` is canonical and checked; `ldd` is confined when it comes from the upload.
 */
async function programRoot(binary: string, guestPath: string, libraries: string[], ldd: Ldd | undefined, appDir?: string): Promise<RootEntry[]> {
  const entries: RootEntry[] = [{ kind: 'file', path: guestPath, source: binary, mode: 0o755 }];
  if ((await sharedLibraries(binary, ldd)).length || libraries.length) {
    entries.push(...(await elfClosure([binary], libraries, { ldd, alsoFrom: appDir ? [appDir] : [] })));
    entries.push({ kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 });
  }
  return entries;
}

function nativeCompiler(language: 'c' | 'cpp'): Compiler {
  const cxx = language === 'cpp';
  return {
    language,
    looksFor: cxx ? '*.cpp/*.cc' : 'Makefile or *.c',
    hostTools: [{ name: cxx ? 'g++' : 'musl-gcc', pkg: cxx ? 'g++' : 'musl-tools' }, { name: 'make', pkg: 'make' }],
    arches: ['amd64', 'arm64'],
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
      const tc = TOOLCHAIN[ctx.arch];
      const staticOnly = ctx.arch !== 'amd64';
      if (makefile) {
        await run(ctx, 'make', ['-j2', cxx ? `CXX=${tc.cxx.join(' ')}` : `CC=${tc.cc} -static`, ...(cxx && !staticOnly ? [] : ['LDFLAGS=-static'])]);
        const entry = ctx.manifest.entry;
        if (entry) {
          // the Makefile ran as the upload wished: what it left may be a link to anywhere
          const real = await insideDir(ctx.sourceDir, entry);
          if (!real && (await whereIs(ctx.sourceDir, entry)) === 'outside') throw leavesUpload(entry, 'unik.yaml entry:');
          if (!real || !(await isElf(real))) throw invalid('NO_ENTRY_POINT', `unik.yaml entry ${entry} is not a program the Makefile built`);
          binary = real;
        } else {
          const made = await builtExecutables(ctx.sourceDir, started);
          if (made.length === 0) throw invalid('NO_ENTRY_POINT', 'make built no executable in the app directory', 'make the default target build the program, or set entry: in unik.yaml');
          if (made.length > 1) throw invalid('NO_ENTRY_POINT', `make built several programs (${made.map((m) => basename(m)).join(', ')})`, 'name the one to run with entry: in unik.yaml');
          binary = made[0]!;
        }
      } else {
        const sources = files.filter((f) => (cxx ? CXX_SOURCES : C_SOURCES).test(f));
        if (!sources.length) throw invalid('NO_SOURCES', `no ${cxx ? 'C++' : 'C'} sources (${cxx ? '*.cpp, *.cc' : '*.c'}) and no Makefile in the upload`);
        const out = ctx.manifest.entry ?? 'app';
        if (!/^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$/.test(out)) throw invalid('BAD_APP_MANIFEST', `unik.yaml entry ${JSON.stringify(out)}: without a Makefile, entry: is the program's file name (no folders)`);
        binary = join(ctx.workDir, out);
        if (cxx) await run(ctx, tc.cxx[0]!, [...tc.cxx.slice(1), '-O2', '-o', binary, ...sources]);
        else await run(ctx, tc.cc, ['-static', '-O2', '-o', binary, ...sources]);
        const real = await insideDir(ctx.workDir, binary);
        if (!real) throw buildFailed('C_COMPILE', `the compiler left no program at ${out}`);
        binary = real;
      }
      const name = basename(binary);
      await checkElfArch(binary, ctx.arch, `the program ${name}`);
      if (staticOnly) {
        // this host's loader and libraries are amd64's: a foreign program must carry its own
        if (await hasInterpreter(binary)) throw invalid('NOT_STATIC', `the ${ctx.arch} program ${name} is linked dynamically; ${ctx.arch} programs are built static here`, 'let the Makefile link with the LDFLAGS it is given (-static)');
        if (ctx.manifest.libraries?.length) throw invalid('NOT_STATIC', `unik.yaml libraries: the ${ctx.arch} program is static; there is no ${ctx.arch} library on this host to add`);
      }
      return {
        entries: staticOnly ? [{ kind: 'file', path: `/app/${name}`, source: binary, mode: 0o755 }] : await programRoot(binary, `/app/${name}`, ctx.manifest.libraries ?? [], confinedLdd(ctx), ctx.sourceDir),
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
  hostTools: [{ name: 'ldd', pkg: 'libc-bin' }],
  // the host's own architecture from the host; the other from Debian's packages for it
  arches: ['amd64', 'arm64'],
  description:
    'Any Linux executable: unik.yaml entry: is a program in the upload, or an absolute path on the daemon host under /usr, /bin, /sbin, /opt (a binary from a Debian package). Its loader and shared libraries are copied in; list libraries it loads with dlopen under libraries:, and data files under files:. For the other architecture (arm64 on an amd64 host), a host program is taken from the same Debian package built for it (downloaded, never installed); an uploaded program for it must be static.',
  async detect() {
    return false; // never guessed: ask for it with --language elf or unik.yaml
  },
  async compile(ctx): Promise<AppRoot> {
    const entry = ctx.manifest.entry;
    if (!entry) throw invalid('NO_ENTRY_POINT', 'an elf image needs the program: entry: in unik.yaml', 'e.g. entry: /usr/bin/webfsd, or a file in the upload');
    const hostPath = entry.startsWith('/');
    const foreign = ctx.arch !== HOST_ONLY[0];
    let binary: string | undefined;
    let guestPath: string;
    if (hostPath) {
      // judged as written (no `..` tricks) and as it really is (no symlink out of /usr)
      guestPath = normalize(entry);
      const allowed = SYSTEM_DIRS.some((d) => containedIn(d, guestPath));
      binary = allowed ? await hostSystemFile(guestPath) : undefined;
      if (!allowed || (!binary && (await whereIs('/', guestPath)) !== 'missing'))
        throw invalid('FILE_NOT_ALLOWED', `entry ${entry} is outside the host directories programs may come from (${SYSTEM_DIRS.join(' ')}), or not a program file there, once symlinks and ".." are resolved`);
      if (!binary) throw invalid('NO_ENTRY_POINT', `entry ${entry} does not exist on the daemon host (install its package there)`);
    } else {
      binary = await insideDir(ctx.sourceDir, entry);
      if (!binary && (await whereIs(ctx.sourceDir, entry)) === 'outside') throw leavesUpload(entry, 'unik.yaml entry:');
      if (!binary) throw invalid('NO_ENTRY_POINT', `entry ${entry} does not exist in the upload`);
      guestPath = `/app/${basename(binary)}`;
    }
    if (!(await isElf(binary))) throw invalid('NOT_AN_ELF', `entry ${entry} is not a Linux executable (ELF)`, 'scripts need their interpreter: use the language of the script instead');
    const app = { argv: [guestPath, ...ctx.args], cwd: '/', env: {}, kernelFragments: ['net'], defaultMemoryMb: 64 };
    if (foreign && hostPath) {
      const program = await debianProgram(ctx, entry, guestPath);
      return { ...app, entries: program.entries, argv: [program.guestPath, ...ctx.args] };
    }
    if (foreign) return { ...app, entries: await uploadedForeignProgram(ctx, entry, binary, guestPath) };
    return {
      ...app,
      // a host program's ldd runs on the host; one from the upload is confined
      entries: await programRoot(binary, guestPath, ctx.manifest.libraries ?? [], hostPath ? undefined : confinedLdd(ctx), hostPath ? undefined : ctx.sourceDir),
    };
  },
};

/**
 * A host program for another architecture: the host's copy is only a pointer to its Debian
 * package, whose build for ctx.arch (with its dependencies) is fetched and unpacked; the
 * program and its libraries are taken from there, read and never run.
 */
async function debianProgram(ctx: CompileContext, entry: string, guestPath: string): Promise<{ entries: RootEntry[]; guestPath: string }> {
  const arch = ctx.arch;
  const owner = await debianOwnerOf(guestPath);
  if (!owner)
    throw invalid('NO_DEBIAN_PACKAGE', `entry ${entry} belongs to no Debian package of the daemon host, so there is no ${arch} build of it to fetch`, `use a program installed from a Debian package, or upload a static ${arch} program`);
  ctx.progress({ step: 'compile', message: `${entry} comes from the Debian package ${owner.package}: taking its ${arch} build` });
  const root = await ensureDebianPackages(ctx.cacheDir, arch, [owner.package], ctx.progress);
  // where the package has it: as named, as dpkg knows it, or under its merged-/usr name
  let found: { source: string; guestPath: string } | undefined;
  for (const p of [...new Set([guestPath, owner.path, mergedUsrAlias(guestPath), mergedUsrAlias(owner.path)])]) {
    const source = p && (await fileInRoot(root, p));
    if (source) {
      found = { source, guestPath: p };
      break;
    }
  }
  if (!found) throw invalid('NO_ENTRY_POINT', `the ${arch} build of the Debian package ${owner.package} has no ${entry}`, 'the program may exist for the host\'s architecture only');
  if (!(await isElf(found.source))) throw invalid('NOT_AN_ELF', `the ${arch} ${entry} of ${owner.package} is not a Linux executable (ELF)`, 'scripts need their interpreter: use the language of the script instead');
  await checkElfArch(found.source, arch, `the ${arch} build of ${entry}`);
  const libraries = await foreignElfClosure(root, [found], ctx.manifest.libraries ?? [], arch);
  const entries: RootEntry[] = [{ kind: 'file', path: found.guestPath, source: found.source, mode: 0o755 }, ...libraries];
  if (libraries.length) entries.push({ kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 });
  return { entries, guestPath: found.guestPath };
}

/** An uploaded program for another architecture: this host has no loader or library for it, so it must be static. */
async function uploadedForeignProgram(ctx: CompileContext, entry: string, binary: string, guestPath: string): Promise<RootEntry[]> {
  await checkElfArch(binary, ctx.arch, `the program ${entry}`);
  if (await hasInterpreter(binary))
    throw invalid('NOT_STATIC', `the ${ctx.arch} program ${entry} in the upload is linked dynamically; an uploaded ${ctx.arch} program must be static`, `link it with -static, or use a program from a Debian package (entry: /usr/bin/<program>): its ${ctx.arch} build and libraries are fetched from Debian`);
  if (ctx.manifest.libraries?.length) throw invalid('NOT_STATIC', `unik.yaml libraries: the uploaded ${ctx.arch} program is static; there is no ${ctx.arch} library to add`);
  return [{ kind: 'file', path: guestPath, source: binary, mode: 0o755 }];
}
