import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { buildFailed, invalid, unavailable } from '../model/errors.js';
import { insideDir, leavesUpload, readFileInside, whereIs } from '../util/safe-path.js';
import { execFileCollect, lastLines, type ExecResult } from '../util/exec.js';
import { runConfined } from './confined.js';
import { ensureDebianPackages } from './debian-packages.js';
import { NSSWITCH, checkElfArch, elfClosure, fileInRoot, foreignElfClosure, isElf, type ForeignFile } from './elf-deps.js';
import { HOST_ONLY } from './host-arch.js';
import type { Arch } from '../model/arch.js';
import type { AppRoot, CompileContext, Compiler, RootEntry } from './types.js';

/**
 * Java: a jar (fat, or with lib/*.jar on its Class-Path), or plain .java sources that unik
 * compiles with javac and jars. The runtime is a JRE cut to the modules the app uses (jdeps →
 * jlink, cached per module set), stripped, at /opt/java; the app is at /app. No javac, jar or
 * shell in the image. For the architecture the host is not, the host's jlink links the JRE from
 * Debian's jmods for that architecture (downloaded, never installed), and the libraries the JRE
 * loads come from Debian's packages for it, read from their ELF headers (nothing foreign runs).
 */

const JAVA_HOME_IN_IMAGE = '/opt/java';
/** the host JDK (jlink, jdeps, javac) */
const JDK_PACKAGE = 'openjdk-17-jdk-headless';
/** bump when the cached runtime's recipe changes (flags, post-processing) */
const JRE_RECIPE = 'jlink-v2';
/** a JDK module name, as jlink takes it: jdeps runs on the upload, so its answer is checked */
const MODULE_NAME = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
/** service-provider modules jdeps cannot see; small, and TLS needs them */
const ALWAYS_MODULES = ['jdk.crypto.ec'];
/** binutils of each architecture where it is not the host's: a runtime for it is stripped with its own */
const CROSS_BINUTILS: Record<Arch, { prefix: string; pkg: string }> = {
  amd64: { prefix: 'x86_64-linux-gnu-', pkg: 'binutils-x86-64-linux-gnu' },
  arm64: { prefix: 'aarch64-linux-gnu-', pkg: 'binutils-aarch64-linux-gnu' },
};

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
  hostTools: ['jlink', 'jdeps', 'javac'].map((name) => ({ name, pkg: JDK_PACKAGE })),
  // the host's jlink links any architecture's jmods: the host's own JDK, or Debian's for the other
  arches: ['amd64', 'arm64'],
  description: [
    'Java (linux base): the upload is a runnable jar (a fat jar, or a jar with lib/*.jar on its manifest Class-Path),',
    'or, with no jar, plain .java sources (no build tool) that unik compiles with javac and packs into a jar.',
    'The main class is the jar manifest Main-Class, or unik.yaml `entry:` (a class name, or the jar to run).',
    'A Maven/Gradle project must be built first (mvn package): unik does not run build tools.',
    'The runtime is a JRE linked with jlink from the modules jdeps finds (plus jdk.crypto.ec); the image holds it at /opt/java and the app at /app.',
    'For the host\'s architecture the JRE comes from the host\'s JDK. For the other one (arm64 on an amd64 host), the host\'s jlink links it from the jmods of Debian\'s openjdk-<version>-jdk-headless for that architecture (the host JDK\'s feature release; downloaded, never installed), and its libraries (glibc, zlib, libstdc++) come from Debian\'s packages for it.',
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
    const jdk = await runtimeJdk(ctx);
    const jre = await linkedRuntime(ctx, modules, jdk);
    ctx.progress({ step: 'compile', message: `runtime: ${modules.join(',')} (${jdk.label})` });

    const entries: RootEntry[] = [...(await treeEntries(jre, JAVA_HOME_IN_IMAGE)), ...appEntries];
    const elves = await runtimeElfFiles(jre, ctx.arch);
    entries.push(...(jdk.root ? await foreignRuntimeLibraries(ctx, jdk.root, elves) : await hostRuntimeLibraries(ctx, jre)));
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

const jdkMissing = (tool: string) => unavailable('NO_JDK', `${tool} (a JDK, 11 or later) is not installed on the daemon host`, `apt-get install ${JDK_PACKAGE} (or run \`npm run setup\`)`);
const noJdk = (tool: string) => (e: NodeJS.ErrnoException): never => {
  if (e.code === 'ENOENT') throw jdkMissing(tool);
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

/** The JDK a runtime is linked from: the host's own, or Debian's jmods for another architecture. */
interface RuntimeJdk {
  /** the host's jlink (it links for any platform whose java.base.jmod it is given) */
  jlink: string;
  /** the host JDK's modules file: the cache key changes when the JDK is updated */
  jlinkStamp: string;
  /** jlink's --module-path: the target's jmods; undefined: the host JDK's own */
  jmods?: string;
  /** Debian's packages for the target, unpacked: where its runtime's libraries come from */
  root?: string;
  /** what else the cache key knows the target JDK by (empty for the host's: its key is unchanged) */
  target: (string | number)[];
  /** binutils for the target's ELF files: '' is the host's */
  binutilsPrefix: string;
  /** for progress messages */
  label: string;
}

/** The host's jlink, and the JDK to link ctx.arch's runtime from. */
async function runtimeJdk(ctx: CompileContext): Promise<RuntimeJdk> {
  const found = onPathAt('jlink');
  if (!found) throw jdkMissing('jlink');
  const jlink = await realpath(found);
  const jdkHome = dirname(dirname(jlink));
  const jdkModules = join(jdkHome, 'lib', 'modules');
  const jlinkStamp = existsSync(jdkModules) ? `${(await stat(jdkModules)).mtimeMs}:${(await stat(jdkModules)).size}` : '';
  const hostVersion = (await releaseVersion(join(jdkHome, 'release'))) ?? (await jlinkVersion(ctx, jlink));
  if (ctx.arch === HOST_ONLY[0])
    return { jlink, jlinkStamp, target: [], binutilsPrefix: '', label: `the host's JDK ${hostVersion} (${ctx.arch}, ${jdkHome})` };
  return { jlink, jlinkStamp, ...(await debianJdk(ctx, hostVersion)) };
}

/**
 * Debian's JDK of the host JDK's feature release for ctx.arch: its jmods and the root holding
 * the libraries its runtime loads. jlink refuses a java.base of another feature or interim
 * release than its own (an update like 17.0.15 against 17.0.21 it takes): checked here first.
 */
async function debianJdk(ctx: CompileContext, hostVersion: string): Promise<Omit<RuntimeJdk, 'jlink' | 'jlinkStamp'>> {
  const arch = ctx.arch;
  const [feature, interim] = releaseNumbers(hostVersion);
  const pkg = `openjdk-${feature}-jdk-headless`;
  const cross = await crossBinutils(arch);
  ctx.progress({ step: 'compile', message: `java runtime for ${arch}: the host's jlink ${hostVersion} links the jmods of Debian's ${pkg} for ${arch}` });
  const root = await ensureDebianPackages(ctx.cacheDir, arch, [pkg], ctx.progress);
  const home = `/usr/lib/jvm/java-${feature}-openjdk-${arch}`;
  const base = await fileInRoot(root, `${home}/jmods/java.base.jmod`);
  if (!base) throw unavailable('NO_JMODS', `Debian's ${pkg} for ${arch} has no ${home}/jmods/java.base.jmod to link a runtime from`, 'the package layout may have changed: report it');
  const version = await releaseVersion((await fileInRoot(root, `${home}/release`)) ?? join(root, 'missing'));
  if (!version) throw unavailable('NO_JMODS', `Debian's ${pkg} for ${arch} has no ${home}/release saying its version`);
  const [tf, ti] = releaseNumbers(version);
  if (tf !== feature || ti !== interim)
    throw unavailable('JDK_VERSION_MISMATCH', `the host's jlink is ${hostVersion} and Debian's ${arch} ${pkg} is ${version}: jlink links only jmods of its own release (${feature}.${interim})`, `install the host JDK of the release Debian has for ${arch} (${tf}.${ti})`);
  const st = await stat(base);
  return {
    jmods: dirname(base),
    root,
    target: [arch, base, st.size, st.mtimeMs, version],
    binutilsPrefix: cross,
    label: `${arch} OpenJDK ${version} from Debian's ${pkg}, linked by the host's jlink ${hostVersion}`,
  };
}

/** JAVA_VERSION of a JDK's release file (e.g. 17.0.15), or undefined. */
async function releaseVersion(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const v = /^JAVA_VERSION="([0-9][0-9.]*)"/m.exec(text)?.[1];
  return v && /^\d+(\.\d+)*$/.test(v) ? v : undefined;
}

/** What `jlink --version` says (e.g. 17.0.15), for a JDK without a release file. */
async function jlinkVersion(ctx: CompileContext, jlink: string): Promise<string> {
  const r = await execFileCollect(jlink, ['--version']).catch(noJdk('jlink'));
  const v = r.output.trim().split('\n')[0]!.trim();
  if (r.code !== 0 || !/^\d+(\.\d+)*/.test(v)) throw buildFailed('JLINK', `jlink --version said:\n${lastLines(r.output, 5)}`);
  ctx.progress({ step: 'compile', message: `jlink ${v}` });
  return /^\d+(\.\d+)*/.exec(v)![0];
}

/** A Java version's feature and interim numbers: "17.0.21.1" → [17, 0], "21" → [21, 0]. */
function releaseNumbers(version: string): [number, number] {
  const [f, i] = version.split('.').map(Number);
  return [f!, i ?? 0];
}

/** The prefix of ctx.arch's binutils (objcopy for jlink, strip for the libraries), which must be installed. */
async function crossBinutils(arch: Arch): Promise<string> {
  const { prefix, pkg } = CROSS_BINUTILS[arch];
  for (const tool of ['objcopy', 'strip'])
    if (!onPathAt(`${prefix}${tool}`)) throw unavailable('NO_CROSS_BINUTILS', `${prefix}${tool} is not installed on the daemon host: a Java runtime for ${arch} is stripped with ${arch}'s binutils`, `apt-get install ${pkg}`);
  return prefix;
}

/** Where a program is on PATH, or undefined. */
function onPathAt(name: string): string | undefined {
  return (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, name)).find(existsSync);
}

/** jlink's runtime for these modules from this JDK, from the cache or made (and stripped). */
async function linkedRuntime(ctx: CompileContext, modules: string[], jdk: RuntimeJdk): Promise<string> {
  // the host's key is what it always was; another architecture's adds its arch and jmods
  const key = createHash('sha256').update(JSON.stringify([JRE_RECIPE, jdk.jlink, jdk.jlinkStamp, modules, ...jdk.target])).digest('hex').slice(0, 16);
  const root = join(ctx.cacheDir, 'jlink');
  const done = join(root, key);
  const jre = join(done, 'jre');
  if (existsSync(join(done, 'ok'))) {
    ctx.progress({ step: 'compile', message: `java runtime (cached): ${modules.join(',')}, ${jdk.label}` });
    return jre;
  }
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.tmp-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    ctx.progress({ step: 'compile', message: `jlink --add-modules ${modules.join(',')} (${jdk.label})` });
    const out = join(tmp, 'jre');
    const started = Date.now();
    const r = await run(ctx, jdk.jlink, [...jlinkSource(jdk), '--add-modules', modules.join(','), '--no-man-pages', '--no-header-files', '--compress=2', '--output', out]);
    if (r.code !== 0) throw buildFailed('JLINK', `jlink failed:\n${lastLines(r.output, 40)}`);
    ctx.progress({ step: 'compile', message: `jlink took ${((Date.now() - started) / 1000).toFixed(1)} s` });
    // what an app in a unikernel cannot use: key management tools, the exec helper
    for (const f of ['bin/keytool', 'bin/jrunscript', 'bin/jfr', 'bin/rmiregistry', 'lib/jexec']) await rm(join(out, f), { force: true });
    // drop the symbol tables (the loader uses .dynsym): about 4 MB off libjvm.so
    for (const f of await walkFiles(out))
      if (await isElf(f)) {
        const s = await execFileCollect(`${jdk.binutilsPrefix}strip`, ['--strip-unneeded', f]).catch(() => undefined);
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

/**
 * Where jlink takes the modules from, and how it drops debug information. The host's JDK:
 * --strip-debug, as always. Another architecture's jmods: the same two steps by name, because
 * --strip-debug's native half runs the host's objcopy, which cannot read that architecture's
 * files (jlink prints an error per file and goes on): it is given the target's objcopy.
 */
function jlinkSource(jdk: RuntimeJdk): string[] {
  if (!jdk.jmods) return ['--strip-debug'];
  const objcopy = onPathAt(`${jdk.binutilsPrefix}objcopy`)!;
  return ['--module-path', jdk.jmods, '--strip-java-debug-attributes', `--strip-native-debug-symbols=objcopy=${objcopy}`];
}

/** The runtime's ELF files at their guest paths, each checked to be for the image's architecture. */
async function runtimeElfFiles(jre: string, arch: Arch): Promise<ForeignFile[]> {
  const out: ForeignFile[] = [];
  for (const f of await walkFiles(jre)) {
    if (!(await isElf(f))) continue;
    const rel = relative(jre, f).split(sep).join('/');
    await checkElfArch(f, arch, `the Java runtime's ${rel}`);
    out.push({ source: f, guestPath: `${JAVA_HOME_IN_IMAGE}/${rel}` });
  }
  return out;
}

/**
 * Host libraries the host's runtime loads: ldd each ELF of the JRE (its own libraries found
 * through libjvm's directory), keep what lies outside it, and let elfClosure place those and
 * libc's NSS.
 */
async function hostRuntimeLibraries(ctx: CompileContext, jre: string): Promise<RootEntry[]> {
  const jreReal = await realpath(jre);
  const hostLibs = await jreHostLibraries(jre);
  const closure = await elfClosure([join(jre, 'bin', 'java')], [...hostLibs, ...(ctx.manifest.libraries ?? [])], { alsoFrom: [jre] });
  return closure.filter((e) => !e.path.startsWith(jre + '/') && !e.path.startsWith(jreReal + '/'));
}

/**
 * Libraries another architecture's runtime loads, from Debian's packages for it: read from the
 * ELF headers, never run. The runtime's own files are in the image at /opt/java, so $ORIGIN
 * resolves to them; lib/server and lib are searched as ldd's LD_LIBRARY_PATH does for the
 * host's, because the JVM loads libjvm.so by path before the libraries that name it.
 */
async function foreignRuntimeLibraries(ctx: CompileContext, root: string, elves: ForeignFile[]): Promise<RootEntry[]> {
  const libraryPath = [`${JAVA_HOME_IN_IMAGE}/lib/server`, `${JAVA_HOME_IN_IMAGE}/lib`];
  return foreignElfClosure(root, elves, ctx.manifest.libraries ?? [], ctx.arch, { inImage: elves, libraryPath });
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
