// Java for the architecture the host is not (arm64 on an amd64 host): the host's jlink links the
// JRE from Debian's arm64 jmods, and the JRE's libraries come from Debian's arm64 packages, read
// from ELF headers. Nothing of the host's JDK or libraries goes into such an image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { containedIn } from '../../src/util/safe-path.js';
import { elfMachine, foreignElfClosure } from '../../src/compilers/elf-deps.js';
import { javaCompiler } from '../../src/compilers/java.js';
import { HOST_ONLY } from '../../src/compilers/host-arch.js';
import type { Arch } from '../../src/model/arch.js';
import type { CompileContext, RootEntry } from '../../src/compilers/types.js';
import type { ProgressEvent } from '../../src/model/types.js';

const dir = mkdtempSync(join(tmpdir(), 'unik-java-foreign-'));
const ROOT = join(dirname(new URL(import.meta.url).pathname), '..', '..', '..');
const CROSS_SYSROOT = '/usr/aarch64-linux-gnu';
const OFFLINE = process.env.UNIK_TEST_OFFLINE ? 'UNIK_TEST_OFFLINE is set' : false;
const MACHINE: Record<Arch, number> = { amd64: 62, arm64: 183 };
const OTHER: Arch = HOST_ONLY[0] === 'amd64' ? 'arm64' : 'amd64';

const withCode = (code: string, message?: RegExp) => (e: unknown) =>
  (e as { code?: string }).code === `UNIK_ERR_${code}` && (message === undefined || message.test((e as Error).message));

function cc(out: string, args: string[]): string {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync('aarch64-linux-gnu-gcc', [...args, '-o', out]);
  return out;
}

function compileContext(cache: string, arch: Arch, events: ProgressEvent[] = []): CompileContext {
  const buildDir = mkdtempSync(join(dir, 'build-'));
  mkdirSync(join(buildDir, 'work'));
  cpSync(join(ROOT, 'examples', 'java-http'), join(buildDir, 'src'), { recursive: true });
  return { sourceDir: join(buildDir, 'src'), workDir: join(buildDir, 'work'), buildDir, cacheDir: cache, args: [], arch, manifest: {}, progress: (e) => events.push(e) };
}

const files = (entries: RootEntry[]) => entries.filter((e): e is Extract<RootEntry, { kind: 'file' }> => e.kind === 'file');
const source = (entries: RootEntry[], path: string) => files(entries).find((e) => e.path === path)?.source;

test('java builds for both architectures', () => {
  assert.deepEqual([...javaCompiler.arches].sort(), ['amd64', 'arm64']);
  assert.match(javaCompiler.description, /jmods of Debian's openjdk-<version>-jdk-headless/);
});

test("foreignElfClosure: a runtime's own libraries (inImage) meet $ORIGIN and the library path, are followed, and are not returned", async () => {
  // a runtime like the JRE: bin/prog needs libone ($ORIGIN/../lib), libone needs libtwo, which
  // sits in lib/server and is found only through the library path (as the JVM preloads libjvm)
  const rt = join(dir, 'rt');
  writeFileSync(join(dir, 'two.c'), 'int two(void) { return 2; }\n');
  writeFileSync(join(dir, 'one.c'), 'int two(void);\nint one(void) { return two(); }\n');
  writeFileSync(join(dir, 'prog.c'), 'int one(void);\nint main(void) { return one(); }\n');
  const two = cc(join(rt, 'lib', 'server', 'libtwo.so'), ['-shared', '-fPIC', '-Wl,-soname,libtwo.so', join(dir, 'two.c')]);
  const one = cc(join(rt, 'lib', 'libone.so'), ['-shared', '-fPIC', '-Wl,-soname,libone.so', join(dir, 'one.c'), `-L${dirname(two)}`, '-ltwo']);
  const prog = cc(join(rt, 'bin', 'prog'), [join(dir, 'prog.c'), `-L${dirname(one)}`, '-lone', `-Wl,-rpath-link,${dirname(two)}`, '-Wl,-rpath,$ORIGIN/../lib']);
  const inImage = [
    { source: prog, guestPath: '/opt/rt/bin/prog' },
    { source: one, guestPath: '/opt/rt/lib/libone.so' },
    { source: two, guestPath: '/opt/rt/lib/server/libtwo.so' },
  ];
  const entries = await foreignElfClosure(CROSS_SYSROOT, inImage, [], 'arm64', { inImage, libraryPath: ['/opt/rt/lib/server'] });
  const paths = entries.map((e) => e.path);
  assert.ok(paths.includes('/lib/ld-linux-aarch64.so.1') && paths.includes('/lib/libc.so.6'), paths.join(' '));
  assert.ok(!paths.some((p) => p.startsWith('/opt/rt/')), `the runtime's own files are the caller's: ${paths.join(' ')}`);
  for (const e of files(entries)) assert.ok(containedIn(realpathSync(CROSS_SYSROOT), e.source), e.source);
  // without the library path, libtwo is nowhere the loader would look: named
  await assert.rejects(foreignElfClosure(CROSS_SYSROOT, inImage, [], 'arm64', { inImage }), withCode('LIBRARY_NOT_FOUND', /libone\.so needs the shared library libtwo\.so/));
  // without inImage, the root has no /opt/rt: libone is not found either
  await assert.rejects(foreignElfClosure(CROSS_SYSROOT, [inImage[0]!], [], 'arm64'), withCode('LIBRARY_NOT_FOUND', /libone\.so/));
});

test(`java-http for ${OTHER}: a JRE linked from Debian's ${OTHER} jmods, its libraries from Debian's ${OTHER} packages, nothing from the host's JDK or libraries`, { skip: OFFLINE, timeout: 15 * 60_000 }, async (t) => {
  const cache = join(dir, 'cache');
  const events: ProgressEvent[] = [];
  let started = Date.now();
  const app = await javaCompiler.compile(compileContext(cache, OTHER, events));
  const archives = join(cache, `debian-${OTHER}`, 'cache', 'archives');
  const debs = readdirSync(archives).filter((f) => f.endsWith('.deb'));
  const mb = debs.reduce((n, f) => n + statSync(join(archives, f)).size, 0) / 1e6;
  const jlinkTook = events.map((e) => /jlink took (\S+ s)/.exec(e.message)?.[1]).find(Boolean);
  t.diagnostic(`first ${OTHER} build (download ${debs.length} packages, ${mb.toFixed(1)} MB; jlink ${jlinkTook}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(events.some((e) => new RegExp(`jlink --add-modules \\S+ \\(${OTHER} OpenJDK [0-9.]+ from Debian's openjdk-\\d+-jdk-headless, linked by the host's jlink`).test(e.message)), events.map((e) => e.message).join('\n'));

  assert.equal(app.argv[0], '/opt/java/bin/java');
  for (const p of ['/opt/java/bin/java', '/opt/java/lib/server/libjvm.so', '/opt/java/lib/libjava.so']) {
    const s = source(app.entries, p);
    assert.ok(s, `${p} is in the image`);
    assert.equal(await elfMachine(s), MACHINE[OTHER], p);
  }
  // every ELF going in is the image's architecture, and nothing comes from the host's JDK or libraries
  const hostLibDir = `/usr/lib/${HOST_ONLY[0] === 'amd64' ? 'x86_64' : 'aarch64'}-linux-gnu`;
  for (const e of files(app.entries)) {
    const real = realpathSync(e.source);
    for (const s of [e.source, real]) assert.ok(!containedIn('/usr/lib/jvm', s) && !containedIn(hostLibDir, s) && !containedIn('/lib', s), `${e.path} comes from the host: ${s}`);
    const m = await elfMachine(real).catch(() => undefined);
    if (m !== undefined) assert.equal(m, MACHINE[OTHER], e.path);
  }
  const loader = OTHER === 'arm64' ? '/lib/ld-linux-aarch64.so.1' : '/lib64/ld-linux-x86-64.so.2';
  assert.ok(source(app.entries, loader), `the ${OTHER} loader is in the image`);
  for (const lib of ['libc.so.6', 'libstdc++.so.6', 'libz.so.1']) assert.ok(app.entries.some((e) => e.path.endsWith(`/${lib}`)), lib);
  assert.ok(app.entries.some((e) => e.path === '/etc/nsswitch.conf'));
  // the runtime's version is the one of Debian's JDK it was linked from
  const version = (file: string) => /^JAVA_VERSION="(.+)"$/m.exec(readFileSync(file, 'utf8'))?.[1];
  const [debianRoot] = readdirSync(join(cache, `debian-${OTHER}`, 'roots'));
  const jvms = join(cache, `debian-${OTHER}`, 'roots', debianRoot!, 'usr', 'lib', 'jvm');
  const debianJdk = readdirSync(jvms).find((n) => new RegExp(`^java-\\d+-openjdk-${OTHER}$`).test(n))!;
  assert.ok(version(join(jvms, debianJdk, 'release')));
  assert.equal(version(source(app.entries, '/opt/java/release')!), version(join(jvms, debianJdk, 'release')));

  // the same app again: the cached runtime, nothing linked or downloaded
  const again: ProgressEvent[] = [];
  await javaCompiler.compile(compileContext(cache, OTHER, again));
  assert.ok(again.some((e) => /java runtime \(cached\)/.test(e.message)), again.map((e) => e.message).join('\n'));
  assert.ok(!again.some((e) => /^jlink --add-modules|downloading|unpacking/.test(e.message)), again.map((e) => e.message).join('\n'));

  // the host's architecture from the same cache: a runtime of its own, under another key
  started = Date.now();
  const host = await javaCompiler.compile(compileContext(cache, HOST_ONLY[0]!));
  t.diagnostic(`${HOST_ONLY[0]} build in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(await elfMachine(source(host.entries, '/opt/java/lib/server/libjvm.so')!), MACHINE[HOST_ONLY[0]!]);
  const keys = readdirSync(join(cache, 'jlink')).filter((k) => !k.startsWith('.'));
  assert.equal(keys.length, 2, `one runtime per architecture: ${keys.join(' ')}`);
  const machines = await Promise.all(keys.map((k) => elfMachine(join(cache, 'jlink', k, 'jre', 'bin', 'java'))));
  assert.deepEqual(machines.sort(), [MACHINE.amd64, MACHINE.arm64].sort());
  const keyOf = (entries: RootEntry[]) => keys.find((k) => source(entries, '/opt/java/bin/java')!.startsWith(join(cache, 'jlink', k) + '/'));
  assert.notEqual(keyOf(app.entries), keyOf(host.entries));

  // a cached runtime with an ELF of the wrong architecture is refused, not put in the image
  const foreignKey = keyOf(app.entries)!;
  const victim = join(cache, 'jlink', foreignKey, 'jre', 'lib', 'libverify.so');
  assert.ok(existsSync(victim));
  copyFileSync(process.execPath, victim);
  await assert.rejects(javaCompiler.compile(compileContext(cache, OTHER)), withCode('WRONG_ARCH', new RegExp(`the Java runtime's lib/libverify\\.so is built for ${HOST_ONLY[0]}, but the image is for ${OTHER}`)));
  rmSync(cache, { recursive: true, force: true });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
