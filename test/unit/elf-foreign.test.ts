// Foreign-architecture ELF files (arm64 on an amd64 host): their loader and libraries are read
// from the files and found inside a root of foreign packages, never by running anything, and
// never outside that root. And the root itself: Debian's arm64 packages, fetched with a private
// apt that leaves the host's dpkg alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { containedIn } from '../../src/util/safe-path.js';
import { elfMachine, foreignElfClosure, readElfDynamic, resolveInRoot } from '../../src/compilers/elf-deps.js';
import { debianOwnerOf, debianPackageOf, debianSourcesFrom, ensureDebianPackages, mergedUsrAlias, privateAptConfig } from '../../src/compilers/debian-packages.js';
import { elfCompiler } from '../../src/compilers/native.js';
import type { CompileContext, RootEntry } from '../../src/compilers/types.js';
import type { ProgressEvent } from '../../src/model/types.js';

const dir = mkdtempSync(join(tmpdir(), 'unik-elf-foreign-'));
const CROSS_SYSROOT = '/usr/aarch64-linux-gnu';
/** a library name as long as the hostile names patched over it */
const PAD = 'libpadpadpadpadpadpad.so.1';

/** An assert.rejects check on a UnikError's stable code (messages are for people). */
const withCode = (code: string, message?: RegExp | string) => (e: unknown) => {
  const text = (e as Error).message;
  return (e as { code?: string }).code === `UNIK_ERR_${code}` && (message === undefined || (typeof message === 'string' ? text.includes(message) : message.test(text)));
};

function cc(out: string, args: string[]): string {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync('aarch64-linux-gnu-gcc', [...args, '-o', out]);
  return out;
}

const src = join(dir, 'p.c');
writeFileSync(src, '#include <stdio.h>\nint pad(void);\nint main(void) { puts("hi"); return 0; }\n');
writeFileSync(join(dir, 'pad.c'), 'int pad(void) { return 1; }\n');
const plain = cc(join(dir, 'plain'), [src]);
const outside = join(dir, 'outside'); // a place beside the root: nothing there may be read
const padOutside = cc(join(outside, PAD), ['-shared', '-fPIC', `-Wl,-soname,${PAD}`, join(dir, 'pad.c')]);
/** a program needing PAD, with the given extra link flags */
const needingPad = (name: string, flags: string[] = []) => cc(join(dir, name), [src, '-Wl,--no-as-needed', `-L${outside}`, `-l:${PAD}`, ...flags]);

/** A root with the cross toolchain's loader and libc, as a Debian arm64 root has them. */
function makeRoot(name: string): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'lib', 'aarch64-linux-gnu'), { recursive: true });
  for (const f of ['ld-linux-aarch64.so.1', 'libc.so.6']) copyFileSync(join(CROSS_SYSROOT, 'lib', f), join(root, 'lib', 'aarch64-linux-gnu', f));
  symlinkSync('aarch64-linux-gnu/ld-linux-aarch64.so.1', join(root, 'lib', 'ld-linux-aarch64.so.1'));
  return realpathSync(root);
}

function assertInside(root: string, entries: RootEntry[]): void {
  for (const e of entries) if (e.kind === 'file') assert.ok(containedIn(root, e.source), `${e.source} is outside ${root}`);
}

/** Replaces every copy of `from` in the file with `to`, NUL-padded to the same length. */
function patchString(file: string, from: string, to: string): string {
  assert.ok(to.length <= from.length);
  const b = readFileSync(file);
  const replacement = Buffer.alloc(from.length);
  replacement.write(to, 'latin1');
  let at = b.indexOf(from);
  assert.ok(at >= 0);
  for (; at >= 0; at = b.indexOf(from, at + 1)) replacement.copy(b, at);
  const out = `${file}-patched-${to.replace(/\W/g, '_')}`;
  writeFileSync(out, b);
  return out;
}

/** Where the program headers and the dynamic entries of an ELF file are, for patching. */
function layout(b: Buffer) {
  const phoff = Number(b.readBigUInt64LE(32));
  const phnum = b.readUInt16LE(56);
  const ph = (type: number) => {
    for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * 56) === type) return phoff + i * 56;
    throw new Error(`no segment ${type}`);
  };
  const dynOff = Number(b.readBigUInt64LE(ph(2) + 8));
  const dyn = (tag: number) => {
    for (let at = dynOff; ; at += 16) {
      const t = Number(b.readBigInt64LE(at));
      if (t === tag) return at;
      if (t === 0) throw new Error(`no dynamic tag ${tag}`);
    }
  };
  return { ph, dyn };
}

function hostile(name: string, patch: (b: Buffer, l: ReturnType<typeof layout>) => void, from = plain): string {
  const b = Buffer.from(readFileSync(from));
  patch(b, layout(b));
  const out = join(dir, `hostile-${name}`);
  writeFileSync(out, b);
  return out;
}

test('the ELF reader: the host ls needs what readelf says, a cross-built program its loader and libc', async () => {
  const ls = await readElfDynamic('/bin/ls');
  assert.equal(ls.machine, 62);
  assert.equal(ls.interp, '/lib64/ld-linux-x86-64.so.2');
  const readelf = execFileSync('readelf', ['-d', '/bin/ls'], { encoding: 'utf8' });
  assert.deepEqual(ls.needed, [...readelf.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]));
  assert.ok(ls.needed.includes('libc.so.6'));

  const p = await readElfDynamic(plain);
  assert.equal(p.machine, 183);
  assert.equal(p.interp, '/lib/ld-linux-aarch64.so.1');
  assert.deepEqual(p.needed, ['libc.so.6']);
  const runpath = await readElfDynamic(needingPad('runpath-reader', ['-Wl,-rpath,$ORIGIN/../mylib:/opt/x', '-Wl,--enable-new-dtags']));
  assert.deepEqual(runpath.runpath, ['$ORIGIN/../mylib', '/opt/x']);
  assert.deepEqual(runpath.needed, [PAD, 'libc.so.6']);
});

test('the closure against the cross toolchain root finds the loader, libc and glibc NSS modules', async () => {
  const entries = await foreignElfClosure(CROSS_SYSROOT, [{ source: plain, guestPath: '/app/plain' }]);
  const paths = entries.map((e) => e.path);
  assert.ok(paths.includes('/lib/ld-linux-aarch64.so.1'), paths.join(' '));
  assert.ok(paths.includes('/lib/libc.so.6'), paths.join(' '));
  for (const nss of ['libnss_files.so.2', 'libnss_dns.so.2', 'libresolv.so.2']) assert.ok(paths.includes(`/lib/${nss}`), nss);
  assertInside(CROSS_SYSROOT, entries);
});

test('RUNPATH with $ORIGIN is followed inside the root; absolute links in the root start from the root', async () => {
  const root = makeRoot('root-runpath');
  const prog = needingPad('runpath', ['-Wl,-rpath,$ORIGIN/../mylib', '-Wl,--enable-new-dtags']);
  mkdirSync(join(root, 'opt', 'mylib'), { recursive: true });
  copyFileSync(padOutside, join(root, 'opt', 'mylib', PAD));
  const entries = await foreignElfClosure(root, [{ source: prog, guestPath: '/opt/bin/runpath' }]);
  assert.deepEqual(entries.map((e) => e.path).sort(), ['/lib/aarch64-linux-gnu/libc.so.6', '/lib/ld-linux-aarch64.so.1', `/opt/mylib/${PAD}`]);
  assertInside(root, entries);
  // a Debian package's absolute link (/usr/lib/x -> /opt/mylib/x) means the root's /opt
  const plainRoot = makeRoot('root-abs-link');
  mkdirSync(join(plainRoot, 'opt', 'mylib'), { recursive: true });
  copyFileSync(padOutside, join(plainRoot, 'opt', 'mylib', PAD));
  symlinkSync(`/opt/mylib/${PAD}`, join(plainRoot, 'lib', 'aarch64-linux-gnu', PAD));
  const viaLink = await foreignElfClosure(plainRoot, [{ source: needingPad('abs-link'), guestPath: '/app/p' }]);
  const lib = viaLink.find((e) => e.path === `/lib/aarch64-linux-gnu/${PAD}`);
  assert.ok(lib?.kind === 'file');
  assert.equal(lib.source, join(plainRoot, 'opt', 'mylib', PAD));
});

test('hostile: DT_NEEDED names that are paths are refused, never looked up', async () => {
  const root = makeRoot('root-needed');
  for (const name of ['../../etc/passwd', '/etc/passwd', '..']) {
    const prog = patchString(needingPad('needed-path'), PAD, name);
    assert.ok((await readElfDynamic(prog)).needed.includes(name)); // read faithfully…
    await assert.rejects(foreignElfClosure(root, [{ source: prog, guestPath: '/app/p' }]), withCode('LIBRARY_NOT_ALLOWED', `needs the library ${JSON.stringify(name)}, which is a path`), name); // …and refused
  }
});

test('hostile: a RUNPATH pointing outside the root finds nothing there', async () => {
  const root = makeRoot('root-runpath-out');
  for (const rpath of [outside, `$ORIGIN/${'../'.repeat(30)}${outside}`, `${outside}/../outside`]) {
    const prog = needingPad(`runpath-out-${rpath.length}`, [`-Wl,-rpath,${rpath}`]);
    assert.ok((await readElfDynamic(prog)).runpath.length + (await readElfDynamic(prog)).rpath.length > 0);
    await assert.rejects(foreignElfClosure(root, [{ source: prog, guestPath: '/app/p' }]), withCode('LIBRARY_NOT_FOUND', `needs the shared library ${PAD}`), rpath);
  }
});

test('hostile: symlinks in the root leading out of it resolve inside it, or to nothing', async () => {
  const root = makeRoot('root-links');
  const libdir = join(root, 'lib', 'aarch64-linux-gnu');
  symlinkSync(padOutside, join(libdir, PAD)); // absolute host path
  mkdirSync(join(root, 'usr', 'lib'), { recursive: true });
  symlinkSync(`${'../'.repeat(20)}${outside.slice(1)}/${PAD}`, join(root, 'usr', 'lib', PAD)); // climbing out
  symlinkSync(outside, join(root, 'usr', 'lib', 'aarch64-linux-gnu')); // a whole folder out
  await assert.rejects(foreignElfClosure(root, [{ source: needingPad('links'), guestPath: '/app/p' }]), withCode('LIBRARY_NOT_FOUND'));
  assert.equal(await resolveInRoot(root, `/lib/aarch64-linux-gnu/${PAD}`), undefined);
  assert.equal(await resolveInRoot(root, `/usr/lib/aarch64-linux-gnu/${PAD}`), undefined);
  assert.equal(await resolveInRoot(root, `/../../../../${outside}/${PAD}`), undefined);
  // a loop ends, and `..` stops at the root
  symlinkSync('loop-b', join(root, 'loop-a'));
  symlinkSync('loop-a', join(root, 'loop-b'));
  assert.equal(await resolveInRoot(root, '/loop-a'), undefined);
  assert.equal(await resolveInRoot(root, '/../../lib/aarch64-linux-gnu/libc.so.6'), join(libdir, 'libc.so.6'));
});

test('hostile: a FIFO or a wrong-architecture file as a library is refused without hanging', async () => {
  const fifoRoot = makeRoot('root-fifo');
  execFileSync('mkfifo', [join(fifoRoot, 'lib', 'aarch64-linux-gnu', PAD)]);
  await assert.rejects(foreignElfClosure(fifoRoot, [{ source: needingPad('fifo'), guestPath: '/app/p' }]), withCode('LIBRARY_NOT_FOUND'));
  const amdRoot = makeRoot('root-amd64-libc');
  rmSync(join(amdRoot, 'lib', 'aarch64-linux-gnu', 'libc.so.6'));
  copyFileSync(realpathSync('/lib/x86_64-linux-gnu/libc.so.6'), join(amdRoot, 'lib', 'aarch64-linux-gnu', 'libc.so.6'));
  await assert.rejects(foreignElfClosure(amdRoot, [{ source: plain, guestPath: '/app/p' }]), withCode('WRONG_ARCH', /libc\.so\.6 is built for amd64, but the image is for arm64/));
});

test('hostile: truncated files and absurd counts, offsets and sizes are refused, in bounded memory', async () => {
  const full = readFileSync(plain);
  const cases: [string, string][] = [];
  const add = (name: string, file: string) => cases.push([name, file]);
  for (const n of [0, 10, 63, 100, 700, 2000]) {
    const f = join(dir, `truncated-${n}`);
    writeFileSync(f, full.subarray(0, n));
    add(`truncated at ${n}`, f);
  }
  add('phoff 2^63', hostile('phoff', (b) => b.writeBigUInt64LE(1n << 63n, 32)));
  add('phoff past the end', hostile('phoff-end', (b) => b.writeBigUInt64LE(BigInt(full.length), 32)));
  add('65535 program headers', hostile('phnum', (b) => b.writeUInt16LE(65535, 56)));
  add('program header size 4096', hostile('phentsize', (b) => b.writeUInt16LE(4096, 54)));
  add('PT_INTERP of 2^40 bytes', hostile('interp-size', (b, l) => b.writeBigUInt64LE(1n << 40n, l.ph(3) + 32)));
  add('PT_INTERP past the end', hostile('interp-off', (b, l) => b.writeBigUInt64LE(BigInt(full.length - 4), l.ph(3) + 8)));
  add('PT_DYNAMIC of 2^60 bytes', hostile('dyn-size', (b, l) => b.writeBigUInt64LE(1n << 60n, l.ph(2) + 32)));
  add('PT_DYNAMIC offset 2^64-1', hostile('dyn-off', (b, l) => b.writeBigUInt64LE((1n << 64n) - 1n, l.ph(2) + 8)));
  add('DT_NEEDED offset 2^62', hostile('needed-off', (b, l) => b.writeBigUInt64LE(1n << 62n, l.dyn(1) + 8)));
  add('DT_STRSZ 2^50 and a far DT_NEEDED', hostile('strsz', (b, l) => (b.writeBigUInt64LE(1n << 50n, l.dyn(10) + 8), b.writeBigUInt64LE(1n << 49n, l.dyn(1) + 8))));
  add('DT_STRTAB in no segment', hostile('strtab', (b, l) => b.writeBigUInt64LE(1n << 55n, l.dyn(5) + 8)));
  add('an unterminated name', hostile('unterminated', (b, l) => b.writeBigUInt64LE(b.readBigUInt64LE(l.dyn(1) + 8) + 3n, l.dyn(10) + 8)));
  add('not a 64-bit little-endian ELF', hostile('class32', (b) => (b[4] = 1)));
  const before = process.memoryUsage().arrayBuffers;
  for (const [name, file] of cases) {
    await assert.rejects(readElfDynamic(file), withCode('BAD_ELF'), name);
    await assert.rejects(foreignElfClosure(CROSS_SYSROOT, [{ source: file, guestPath: '/app/p' }]), name);
  }
  assert.ok(process.memoryUsage().arrayBuffers - before < 32 << 20);
});

test('Debian sources: only Debian archives, suites and components are taken from the host', () => {
  const deb822 = [
    'Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n# comment\nTypes: deb\nURIs: http://deb.debian.org/debian-security/\nSuites: bookworm-security\nComponents: main\n',
    'Types: deb\nURIs: https://evil.example/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\nTypes: deb-src\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main\n',
    'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: ../../x bookworm/ "quoted"\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: secret -o\n',
  ];
  const oneLine = ['# deb http://deb.debian.org/debian sid main\ndeb [arch=amd64 signed-by=/x.gpg] http://ftp.de.debian.org/debian bookworm main non-free-firmware\ndeb http://ppa.launchpadcontent.net/x/ubuntu jammy main\ndeb file:///srv/repo ./\ndeb-src http://deb.debian.org/debian bookworm main\n'];
  assert.deepEqual(debianSourcesFrom(deb822, oneLine), [
    { uri: 'http://deb.debian.org/debian', suite: 'bookworm', components: ['main', 'contrib'] },
    { uri: 'http://deb.debian.org/debian', suite: 'bookworm-updates', components: ['main', 'contrib'] },
    { uri: 'http://deb.debian.org/debian-security', suite: 'bookworm-security', components: ['main'] },
    { uri: 'http://ftp.de.debian.org/debian', suite: 'bookworm', components: ['main', 'non-free-firmware'] },
  ]);
});

test('the host package of a file: exact paths, merged-/usr aliases, never a pattern', async () => {
  assert.equal(mergedUsrAlias('/bin/ls'), '/usr/bin/ls');
  assert.equal(mergedUsrAlias('/usr/lib/x/y.so'), '/lib/x/y.so');
  assert.equal(mergedUsrAlias('/usr/share/doc'), undefined);
  assert.equal(mergedUsrAlias('/usr/bin'), undefined);
  assert.equal(await debianPackageOf('/bin/ls'), 'coreutils');
  assert.deepEqual(await debianOwnerOf('/usr/bin/ls'), { package: 'coreutils', path: '/bin/ls' });
  if (existsSync('/usr/bin/webfsd')) assert.equal(await debianPackageOf('/usr/bin/webfsd'), 'webfs');
  for (const p of ['/usr/bin/l*', '/usr/bin/l?', '/bin/[l]s', '/nonexistent/prog', 'bin/ls', '/bin', '/usr/bin/ls\nx']) assert.equal(await debianPackageOf(p), undefined, p);
});

function hostDpkgState() {
  return { foreign: execFileSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }), status: statSync('/var/lib/dpkg/status').mtimeMs };
}

test('ensureDebianPackages: refuses names that are not package names, before running anything', async () => {
  const cache = mkdtempSync(join(dir, 'cache-names-'));
  for (const bad of ['../etc', 'Webfs', '-o', 'a b', '', 'x'.repeat(101), 'webfs=1.0', 'web*', 'webfs/sid', '.hidden', 'a\nb'])
    await assert.rejects(ensureDebianPackages(cache, 'arm64', [bad], () => {}), withCode('BAD_PACKAGE_NAME'), JSON.stringify(bad));
  assert.deepEqual(readdirSync(cache), []);
});

test('ensureDebianPackages: webfs for arm64, its closure unpacked, the host dpkg untouched', { skip: process.env.UNIK_TEST_OFFLINE ? 'UNIK_TEST_OFFLINE is set' : false, timeout: 10 * 60_000 }, async (t) => {
  const cache = mkdtempSync(join(dir, 'cache-'));
  const host = hostDpkgState();
  const events: ProgressEvent[] = [];
  const started = Date.now();
  const root = await ensureDebianPackages(cache, 'arm64', ['webfs'], (e) => events.push(e));
  const seconds = (Date.now() - started) / 1000;
  const archives = join(cache, 'debian-arm64', 'cache', 'archives');
  const debs = readdirSync(archives).filter((f) => f.endsWith('.deb'));
  const bytes = debs.reduce((n, f) => n + statSync(join(archives, f)).size, 0);
  t.diagnostic(`webfs:arm64 closure: ${debs.length} packages, ${(bytes / 1e6).toFixed(1)} MB of .deb, fetched (lists included) and unpacked in ${seconds.toFixed(1)} s`);
  t.diagnostic(`packages: ${debs.join(' ')}`);

  const webfsd = join(root, 'usr', 'bin', 'webfsd');
  assert.equal(await elfMachine(webfsd), 183);
  const entries = await foreignElfClosure(root, [{ source: realpathSync(webfsd), guestPath: '/usr/bin/webfsd' }]);
  const paths = entries.map((e) => e.path);
  t.diagnostic(`webfsd needs: ${paths.join(' ')}`);
  assert.ok(paths.includes('/lib/ld-linux-aarch64.so.1'), paths.join(' '));
  assert.ok(paths.includes('/lib/aarch64-linux-gnu/libc.so.6'), paths.join(' '));
  assert.ok(paths.some((p) => p.endsWith('/libgnutls.so.30')), paths.join(' '));
  assertInside(realpathSync(root), entries);
  for (const e of entries) if (e.kind === 'file') assert.equal(await elfMachine(e.source), 183, e.path);

  // the same set again: the same root, nothing downloaded
  const again: ProgressEvent[] = [];
  assert.equal(await ensureDebianPackages(cache, 'arm64', ['webfs'], (e) => again.push(e)), root);
  assert.ok(!again.some((e) => /downloading|updating|unpacking/.test(e.message)), again.map((e) => e.message).join('\n'));
  await assert.rejects(ensureDebianPackages(cache, 'arm64', ['unik-no-such-package'], () => {}), withCode('UNKNOWN_DEBIAN_PACKAGE'));
  assert.deepEqual(hostDpkgState(), host);
  assert.deepEqual(readdirSync(join(cache, 'debian-arm64', 'roots')), [root.split('/').pop()]);

  // the elf compiler end to end (no VM): a host entry becomes the arm64 build of its package
  if (existsSync('/usr/bin/webfsd')) {
    const ctx = compileContext(cache, { entry: '/usr/bin/webfsd' });
    const app = await elfCompiler.compile(ctx);
    assert.deepEqual(app.argv, ['/usr/bin/webfsd']);
    const program = app.entries.find((e) => e.path === '/usr/bin/webfsd');
    assert.ok(program?.kind === 'file' && (await elfMachine(program.source)) === 183);
    assert.ok(app.entries.some((e) => e.path === '/etc/nsswitch.conf'));
    assertInside(realpathSync(cache), app.entries);
  }
  rmSync(cache, { recursive: true, force: true });
});

function compileContext(cache: string, manifest: CompileContext['manifest']): CompileContext {
  const buildDir = mkdtempSync(join(dir, 'build-'));
  for (const d of ['src', 'work']) mkdirSync(join(buildDir, d));
  return { sourceDir: join(buildDir, 'src'), workDir: join(buildDir, 'work'), buildDir, cacheDir: cache, args: [], arch: 'arm64', manifest, progress: () => {} };
}

test('elf for arm64 from the upload: static programs only, a dynamic one refused with what to do', async () => {
  assert.ok(elfCompiler.arches.includes('arm64'));
  const ctx = compileContext(join(dir, 'no-cache'), { entry: 'prog' });
  cc(join(ctx.sourceDir, 'prog'), ['-static', src]);
  const app = await elfCompiler.compile(ctx);
  assert.deepEqual(app.entries.map((e) => e.path), ['/app/prog']);
  const dynCtx = compileContext(join(dir, 'no-cache'), { entry: 'prog' });
  copyFileSync(plain, join(dynCtx.sourceDir, 'prog'));
  await assert.rejects(elfCompiler.compile(dynCtx), withCode('NOT_STATIC', /linked dynamically; an uploaded arm64 program must be static/));
  const amdCtx = compileContext(join(dir, 'no-cache'), { entry: 'prog' });
  copyFileSync('/bin/ls', join(amdCtx.sourceDir, 'prog'));
  await assert.rejects(elfCompiler.compile(amdCtx), withCode('WRONG_ARCH', /built for amd64, but the image is for arm64/));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("hostile host apt.conf: the private configuration clears what the host's appends and hooks, and keeps the freshness checks on", async () => {
  const cache = mkdtempSync(join(dir, 'cache-aptconf-'));
  const ours = await privateAptConfig(cache, 'arm64');
  // a host configuration as apt.conf.d could hold it, read before ours (as apt-get -c does)
  const host = join(dir, 'hostlike.conf');
  writeFileSync(host, 'APT::Architectures { "amd64"; "i386"; };\nAPT::Update::Post-Invoke-Success { "touch /tmp/unik-hook-ran"; };\nDPkg::Post-Invoke { "touch /tmp/unik-hook-ran"; };\nAcquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n');
  const dump = execFileSync('apt-config', ['-c', host, '-c', ours, 'dump'], { encoding: 'utf8' });
  assert.deepEqual([...dump.matchAll(/^APT::Architectures:: "([^"]*)";$/gm)].map((m) => m[1]), ['arm64']);
  assert.doesNotMatch(dump, /unik-hook-ran/);
  assert.match(dump, /^Acquire::Check-Valid-Until "true";$/m);
  assert.match(dump, /^Acquire::Check-Date "true";$/m);
  assert.equal(statSync(join(cache, 'debian-arm64')).mode & 0o777, 0o700, 'unpacked roots are the daemon\'s alone');
});
