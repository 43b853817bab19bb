import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { buildFailed, invalid, unavailable } from '../model/errors.js';
import { insideDir, leavesUpload, readFileInside, whereIs } from '../util/safe-path.js';
import { execFileCollect, lastLines, type ExecResult } from '../util/exec.js';
import { runConfined } from './confined.js';
import { NSSWITCH, elfClosure, isElf } from './elf-deps.js';
import { HOST_ONLY } from './host-arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

/**
 * Java: a jar (fat, or with lib/*.jar on its Class-Path), or plain .java sources that unik
 * compiles with javac and jars. The runtime is a JRE cut to the modules the app uses (jdeps →
 * jlink, cached per module set), stripped, at /opt/java; the app is at /app. No javac, jar or
 * shell in the image.
 */

const JAVA_HOME_IN_IMAGE = '/opt/java';
/** bump when the cached runtime's recipe changes (flags, post-processing) */
const JRE_RECIPE = 'jlink-v2';
/** a JDK module name, as jlink takes it: jdeps runs on the upload, so its answer is checked */
const MODULE_NAME = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
/** service-provider modules jdeps cannot see; small, and TLS needs them */
const ALWAYS_MODULES = ['jdk.crypto.ec'];

const JVM_FLAGS = [
  // one vCPU under emulation: no parallel GC threads, C1 only (C2 compiles are slow under TCG)
  '-XX:+UseSerialGC',
  '-XX:TieredStopAtLevel=1',
  // compile only what is really hot: under TCG the JIT's own work slows the start more than it
  // helps (measured to the first HTTP 200: 5.0 s by default, 4.1-4.5 s with ×20, 4.0 s with -Xint)
  '-XX:CompileThresholdScaling=20',
  // use a CDS archive if the runtime has one (this one has not: see linkedRuntime)
  '-Xshare:auto',
  // no /tmp/hsperfdata mmap file
  '-XX:-UsePerfData',
  // the VM exists for this one program: let the heap use half of it (the image root is in RAM too)
  '-XX:MaxRAMPercentage=50',
];

export const javaCompiler: Compiler = {
  language: 'java',
  looksFor: '*.jar, *.java, pom.xml',
  hostTools: ['jlink', 'jdeps', 'javac'],
  // the runtime is taken from the daemon host: images for the host's architecture only
  arches: HOST_ONLY,
  description: [
    'Java (linux base): the upload is a runnable jar (a fat jar, or a jar with lib/*.jar on its manifest Class-Path),',
    'or, with no jar, plain .java sources (no build tool) that unik compiles with javac and packs into a jar.',
    'The main class is the jar manifest Main-Class, or unik.yaml `entry:` (a class name, or the jar to run).',
    'A Maven/Gradle project must be built first (mvn package): unik does not run build tools.',
    'The runtime is a JRE linked with jlink from the modules jdeps finds (plus jdk.crypto.ec); the image holds it at /opt/java and the app at /app.',
    'The JVM runs with -XX:+UseSerialGC -XX:TieredStopAtLevel=1 and a heap of up to half the VM memory; add flags at run time with JAVA_TOOL_OPTIONS.',
    'Build-time --args become the program arguments; env is given at run time.',
  ].join('\n'),

  async detect(dir) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.some((n) => n.endsWith('.jar')) || names.includes('pom.xml')) return true;
    return (await javaSources(dir)).length > 0;
  },

  async compile(ctx: CompileContext): Promise<AppRoot> {
    const entry = ctx.manifest.entry;
    const entryIsJar = !!entry && entry.endsWith('.jar');
    // an explicit class name (not a jar) overrides the manifest's Main-Class
    const entryClass = entry && !entryIsJar ? classNameOf(entry) : undefined;

    let jar: string;
    let fromSources = false;
    const topJars = (await readdir(ctx.sourceDir)).filter((n) => n.endsWith('.jar')).sort();
    if (entryIsJar) {
      if ((await whereIs(ctx.sourceDir, entry)) === 'outside') throw leavesUpload(entry, 'unik.yaml entry:');
      const real = await insideDir(ctx.sourceDir, entry);
      if (!real || !(await stat(real)).isFile()) throw invalid('NO_JAR', `unik.yaml entry ${entry} is not a jar in the upload`);
      jar = real;
    } else if (topJars.length) {
      const picked = await pickJar(ctx, topJars);
      const real = await insideDir(ctx.sourceDir, picked);
      if (!real) throw leavesUpload(picked);
      jar = real;
    } else {
      const sources = await javaSources(ctx.sourceDir);
      if (!sources.length) {
        if (existsSync(join(ctx.sourceDir, 'pom.xml')))
          throw invalid('NO_JAR', 'the upload is a Maven project without a jar: build the jar first (mvn package); unik does not run Maven', 'upload the directory holding the built jar (e.g. target/), or plain .java sources');
        throw invalid('NO_JAVA_APP', 'no jar and no .java sources in the upload', 'upload a runnable jar, or .java sources with a main method');
      }
      jar = await compileSources(ctx, sources, entryClass);
      fromSources = true;
    }

    const mf = await readJarManifest(ctx, jar);
    const mainClass = entryClass ?? mf['Main-Class'];
    if (!mainClass)
      throw invalid('NO_MAIN_CLASS', `the jar ${basename(jar)} has no Main-Class in its manifest (META-INF/MANIFEST.MF)`, 'add Main-Class to its manifest, or set entry: in unik.yaml to the main class');

    // the jar's companions: lib/ beside it, and whatever its Class-Path names inside the upload
    const jarDir = dirname(jar);
    const appEntries: RootEntry[] = [{ kind: 'file', path: '/app/app.jar', source: jar, mode: 0o644 }];
    const libJars: string[] = [];
    // a companion is used only if it really is a file of the upload (no link out of it)
    const addLib = async (candidate: string, named: string) => {
      if ((await whereIs(ctx.sourceDir, candidate)) === 'outside') throw leavesUpload(named, 'the jar\'s companion');
      const file = await insideDir(ctx.sourceDir, candidate);
      if (!file || !(await stat(file)).isFile()) return;
      const rel = relative(jarDir, candidate).split(sep).join('/');
      if (rel.startsWith('..') || libJars.includes(file)) return;
      libJars.push(file);
      appEntries.push({ kind: 'file', path: `/app/${rel}`, source: file, mode: 0o644 });
    };
    if (!fromSources) {
      for (const cp of (mf['Class-Path'] ?? '').split(/\s+/).filter(Boolean)) {
        let file: string;
        try {
          file = resolve(jarDir, decodeURIComponent(cp));
        } catch {
          continue;
        }
        if (/^[a-z]+:/i.test(cp)) continue; // a URL: the JVM's business, nothing to copy
        if ((await whereIs(ctx.sourceDir, file)) === 'inside') await addLib(file, `Class-Path entry ${cp}`);
        else if ((await whereIs(ctx.sourceDir, file)) === 'outside') throw leavesUpload(cp, 'the jar manifest\'s Class-Path entry');
        else ctx.progress({ step: 'compile', message: `warning: Class-Path entry ${cp} is not in the upload` });
      }
      const lib = join(jarDir, 'lib');
      const libWhere = await whereIs(ctx.sourceDir, lib);
      if (libWhere === 'outside') throw leavesUpload('lib/', 'the jar\'s');
      if (libWhere === 'inside')
        for (const f of await walkFiles(lib)) if (f.endsWith('.jar')) await addLib(f, relative(ctx.sourceDir, f));
    }

    const modules = await moduleDeps(ctx, jar, libJars);
    const jre = await linkedRuntime(ctx, modules);
    ctx.progress({ step: 'compile', message: `runtime: ${modules.join(',')}` });

    const entries: RootEntry[] = [...(await treeEntries(jre, JAVA_HOME_IN_IMAGE)), ...appEntries];
    // host libraries the runtime loads: ldd each ELF of the JRE (its own libraries found through
    // libjvm's directory), keep what lies outside it, and let elfClosure place those and libc's NSS
    const jreReal = await realpath(jre);
    const hostLibs = await jreHostLibraries(jre);
    const closure = await elfClosure([join(jre, 'bin', 'java')], [...hostLibs, ...(ctx.manifest.libraries ?? [])], { alsoFrom: [jre] });
    for (const e of closure) if (!e.path.startsWith(jre + '/') && !e.path.startsWith(jreReal + '/')) entries.push(e);
    entries.push({ kind: 'data', path: '/etc/nsswitch.conf', content: NSSWITCH, mode: 0o644 });

    // -jar reads the jar's own Class-Path; a main class given in unik.yaml gets lib/ explicitly
    const classPath = ['/app/app.jar', ...appEntries.slice(1).map((e) => e.path)].join(':');
    const launch = entryClass ? ['-cp', classPath, mainClass] : ['-jar', '/app/app.jar'];
    return {
      entries,
      argv: [`${JAVA_HOME_IN_IMAGE}/bin/java`, ...JVM_FLAGS, ...launch, ...ctx.args],
      cwd: '/app',
      env: { JAVA_HOME: JAVA_HOME_IN_IMAGE },
      kernelFragments: ['net'],
      defaultMemoryMb: 256,
    };
  },
};

/** .java files of the upload (not under hidden directories), sorted. */
async function javaSources(dir: string): Promise<string[]> {
  return (await walkFiles(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.java')).sort();
}

async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (d.name.startsWith('.')) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await walkFiles(p)));
    else if (d.isFile()) out.push(p);
  }
  return out;
}

/** "com/x/Main.java", "com.x.Main" or "Main.class" → "com.x.Main". */
function classNameOf(entry: string): string {
  return entry.replace(/\.(java|class)$/, '').replace(/^\.?\//, '').replace(/\//g, '.');
}

const noJdk = (tool: string) => (e: NodeJS.ErrnoException): never => {
  if (e.code === 'ENOENT') throw unavailable('NO_JDK', `${tool} (a JDK, 11 or later) is not installed on the daemon host`, 'apt-get install openjdk-17-jdk-headless (or run `npm run setup`)');
  throw e;
};

/** A JDK tool on the upload (javac runs annotation processors, jar and jdeps read its jars): confined. */
async function runOnUpload(ctx: CompileContext, tool: string, args: string[], cwd?: string): Promise<ExecResult> {
  return runConfined(ctx, tool, args, { cwd }).catch(noJdk(tool));
}

/** A JDK tool on the host's own JDK only (jlink with checked module names). */
async function run(ctx: CompileContext, tool: string, args: string[]): Promise<ExecResult> {
  return execFileCollect(tool, args, { onLine: (l) => ctx.progress({ step: 'compile', message: l }) }).catch(noJdk(tool));
}

/** With several top-level jars, the one with a Main-Class (there must be exactly one). */
async function pickJar(ctx: CompileContext, jars: string[]): Promise<string> {
  if (jars.length === 1) return jars[0]!;
  const runnable: string[] = [];
  for (const j of jars) {
    const real = await insideDir(ctx.sourceDir, j);
    if (real && (await readJarManifest(ctx, real).catch(() => ({}) as Record<string, string>))['Main-Class']) runnable.push(j);
  }
  if (runnable.length === 1) return runnable[0]!;
  throw invalid('AMBIGUOUS_JAR', `the upload has ${jars.length} jars at its root (${jars.join(', ')}) and ${runnable.length} of them have a Main-Class`, 'set entry: in unik.yaml to the jar to run, or move libraries into lib/');
}

/** javac the sources into classes/, and jar them with the main class. */
async function compileSources(ctx: CompileContext, sources: string[], entryClass: string | undefined): Promise<string> {
  let main = entryClass;
  if (!main) {
    const mains: string[] = [];
    for (const f of sources) {
      const text = await readFile(f, 'utf8');
      if (!/\bpublic\s+static\s+void\s+main\s*\(/.test(text) && !/\bstatic\s+public\s+void\s+main\s*\(/.test(text)) continue;
      const pkg = /^\s*package\s+([\w.]+)\s*;/m.exec(text)?.[1];
      const cls = basename(f, '.java');
      mains.push(pkg ? `${pkg}.${cls}` : cls);
    }
    if (mains.length > 1)
      throw invalid('AMBIGUOUS_MAIN_CLASS', `several classes have a main method: ${mains.join(', ')}`, 'set entry: in unik.yaml to the main class');
    main = mains[0];
    if (!main) throw invalid('NO_MAIN_CLASS', 'no class in the .java sources has `public static void main(String[] args)`', 'add a main method, or set entry: in unik.yaml to the main class');
  }
  const classes = join(ctx.workDir, 'classes');
  await mkdir(classes, { recursive: true });
  ctx.progress({ step: 'compile', message: `javac ${sources.length} source file${sources.length > 1 ? 's' : ''} (main class ${main})` });
  const rel = sources.map((s) => relative(ctx.sourceDir, s));
  const r = await runOnUpload(ctx, 'javac', ['-d', classes, '-encoding', 'UTF-8', '-nowarn', ...rel], ctx.sourceDir);
  if (r.code !== 0) throw buildFailed('JAVA_COMPILE', `javac failed:\n${lastLines(r.output, 40)}`, 'fix the compile errors above and build again');
  const jar = join(ctx.workDir, 'app.jar');
  if (!/^[\w$.]+$/.test(main)) throw invalid('BAD_MAIN_CLASS', `${JSON.stringify(main)} is not a Java class name`);
  const j = await runOnUpload(ctx, 'jar', ['--create', '--file', jar, '--main-class', main, '-C', classes, '.']);
  if (j.code !== 0) throw buildFailed('JAVA_JAR', `jar failed:\n${lastLines(j.output, 40)}`);
  const real = await insideDir(ctx.workDir, jar);
  if (!real) throw buildFailed('JAVA_JAR', 'jar made no app.jar');
  return real;
}

/** The main attributes of a jar's META-INF/MANIFEST.MF (continuation lines joined). */
async function readJarManifest(ctx: CompileContext, jar: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(ctx.workDir, 'manifest-'));
  try {
    const r = await runOnUpload(ctx, 'jar', ['xf', jar, 'META-INF/MANIFEST.MF'], dir);
    if (r.code !== 0) throw invalid('BAD_JAR', `${basename(jar)} is not a readable jar:\n${lastLines(r.output, 10)}`);
    const found = await readFileInside(dir, 'META-INF/MANIFEST.MF');
    if (found === undefined) return {};
    const text = found.replace(/\r\n?/g, '\n').replace(/\n /g, '');
    const attrs: Record<string, string> = {};
    for (const line of text.split('\n')) {
      if (!line.trim()) break; // the main section ends at the first blank line
      const m = /^([A-Za-z0-9_-]+):\s?(.*)$/.exec(line);
      if (m) attrs[m[1]!] = m[2]!.trim();
    }
    return attrs;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The JDK modules the app needs (jdeps), plus the service providers it cannot see. */
async function moduleDeps(ctx: CompileContext, jar: string, libs: string[]): Promise<string[]> {
  ctx.progress({ step: 'compile', message: 'jdeps: finding the JDK modules the app uses' });
  const args = ['--print-module-deps', '--ignore-missing-deps', '--multi-release', '17'];
  if (libs.length) args.push('--class-path', libs.join(':'));
  const r = await runConfined(ctx, 'jdeps', [...args, jar, ...libs], { quiet: true }).catch(noJdk('jdeps'));
  const last = r.output.trim().split('\n').pop() ?? '';
  let mods: string[];
  // jdeps read the upload: its answer goes to jlink only if every name is a module name
  if (r.code === 0 && last.split(',').every((m) => MODULE_NAME.test(m))) mods = last.split(',');
  else {
    // jdeps chokes on some jars (odd bytecode, broken multi-release layouts): take all of Java SE
    ctx.progress({ step: 'compile', message: `warning: jdeps failed, linking all of java.se:\n${lastLines(r.output, 10)}` });
    mods = ['java.se'];
  }
  return [...new Set([...mods, ...ALWAYS_MODULES, 'java.base'])].sort();
}

/** jlink's runtime for these modules, from the cache or made (and stripped). */
async function linkedRuntime(ctx: CompileContext, modules: string[]): Promise<string> {
  const onPath = (process.env.PATH ?? '').split(':').map((d) => join(d, 'jlink')).find(existsSync);
  const jlink = onPath ? await realpath(onPath) : 'jlink';
  const jdkModules = join(dirname(dirname(jlink)), 'lib', 'modules');
  const jdkStamp = existsSync(jdkModules) ? `${(await stat(jdkModules)).mtimeMs}:${(await stat(jdkModules)).size}` : '';
  const key = createHash('sha256').update(JSON.stringify([JRE_RECIPE, jlink, jdkStamp, modules])).digest('hex').slice(0, 16);
  const root = join(ctx.cacheDir, 'jlink');
  const done = join(root, key);
  const jre = join(done, 'jre');
  if (existsSync(join(done, 'ok'))) {
    ctx.progress({ step: 'compile', message: `java runtime (cached): ${modules.join(',')}` });
    return jre;
  }
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.tmp-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    ctx.progress({ step: 'compile', message: `jlink --add-modules ${modules.join(',')}` });
    const out = join(tmp, 'jre');
    const r = await run(ctx, 'jlink', ['--add-modules', modules.join(','), '--strip-debug', '--no-man-pages', '--no-header-files', '--compress=2', '--output', out]);
    if (r.code !== 0) throw buildFailed('JLINK', `jlink failed:\n${lastLines(r.output, 40)}`);
    // what an app in a unikernel cannot use: key management tools, the exec helper
    for (const f of ['bin/keytool', 'bin/jrunscript', 'bin/jfr', 'bin/rmiregistry', 'lib/jexec']) await rm(join(out, f), { force: true });
    // drop the symbol tables (the loader uses .dynsym): about 4 MB off libjvm.so
    for (const f of await walkFiles(out))
      if (await isElf(f)) {
        const s = await execFileCollect('strip', ['--strip-unneeded', f]).catch(() => undefined);
        if (s && s.code !== 0) ctx.progress({ step: 'compile', message: `warning: strip ${basename(f)}: ${lastLines(s.output, 2)}` });
      }
    // no CDS archive (java -Xshare:dump): measured under TCG, its 11 MB in the initramfs cost as
    // much boot time as it saves JVM start, and raise the smallest workable memory by 30 MB
    await rm(join(out, 'lib', 'classlist'), { force: true });
    await writeFile(join(tmp, 'ok'), modules.join(',') + '\n');
    // a leftover without its "ok" marker is half made: replace it
    if (existsSync(done) && !existsSync(join(done, 'ok'))) await rm(done, { recursive: true, force: true });
    await rename(tmp, done).catch((e: NodeJS.ErrnoException) => {
      // another build made the same runtime meanwhile: use theirs
      if (!existsSync(join(done, 'ok'))) throw e;
    });
    return jre;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Every file, directory and symlink under dir, placed under `at` in the image. */
async function treeEntries(dir: string, at: string): Promise<RootEntry[]> {
  const out: RootEntry[] = [{ kind: 'dir', path: at, mode: 0o755 }];
  const walk = async (d: string, to: string) => {
    for (const ent of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, ent.name);
      const q = `${to}/${ent.name}`;
      if (ent.isSymbolicLink()) out.push({ kind: 'symlink', path: q, target: await readlink(p) });
      else if (ent.isDirectory()) {
        out.push({ kind: 'dir', path: q, mode: 0o755 });
        await walk(p, q);
      } else if (ent.isFile()) {
        const mode = (await lstat(p)).mode & 0o777;
        out.push({ kind: 'file', path: q, source: p, mode: mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(dir, at);
  return out;
}

/** Host libraries (absolute paths, outside the JRE) that the JRE's ELF files need. */
async function jreHostLibraries(jre: string): Promise<string[]> {
  const jreReal = await realpath(jre);
  const env = { ...process.env, LD_LIBRARY_PATH: [join(jre, 'lib', 'server'), join(jre, 'lib')].join(':') };
  const libs = new Set<string>();
  for (const f of await walkFiles(jre)) {
    if (!(await isElf(f))) continue;
    const r = await execFileCollect('ldd', [f], { env });
    if (/not a dynamic executable|statically linked/.test(r.output)) continue;
    const missing = [...r.output.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]!);
    if (missing.length)
      throw invalid('LIBRARY_NOT_FOUND', `the Java runtime's ${basename(f)} needs ${missing.join(', ')}, not found on the daemon host`, 'install the package that provides it on the daemon host');
    for (const m of r.output.matchAll(/=>\s+(\/\S+)\s+\(0x/g)) {
      const p = m[1]!;
      const real = await realpath(p).catch(() => p);
      if (p.startsWith(jre + '/') || real.startsWith(jreReal + '/')) continue;
      libs.add(p);
    }
  }
  return [...libs].sort();
}
