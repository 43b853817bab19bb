// Python images for the other architecture (arm64 on an amd64 host): the interpreter and the
// standard library come from Debian's arm64 packages, unpacked into a root under the cache, and
// nothing of the host's /usr or /etc goes in, even where a package's symlink names a host path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { containedIn } from '../../src/util/safe-path.js';
import { elfMachine, readElfDynamic } from '../../src/compilers/elf-deps.js';
import { extensionModules, foreignStdlib, pythonCompiler } from '../../src/compilers/python.js';
import { hostArch } from '../../src/model/arch.js';
import type { CompileContext, RootEntry } from '../../src/compilers/types.js';
import type { ProgressEvent } from '../../src/model/types.js';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'unik-python-foreign-')));
const EXAMPLE = join(import.meta.dirname, '..', '..', '..', 'examples', 'python-http');
const STDLIB = '/usr/lib/python3.11';
const ARM64 = 183;

/** An assert.rejects check on a UnikError's stable code (messages are for people). */
const withCode = (code: string) => (e: unknown) => (e as { code?: string }).code === `UNIK_ERR_${code}`;

function fileSources(entries: RootEntry[]): string[] {
  return entries.flatMap((e) => (e.kind === 'file' ? [e.source] : []));
}

function compileContext(cache: string, arch: CompileContext['arch'], events: ProgressEvent[]): CompileContext {
  const buildDir = mkdtempSync(join(dir, 'build-'));
  mkdirSync(join(buildDir, 'work'));
  cpSync(EXAMPLE, join(buildDir, 'src'), { recursive: true });
  return { sourceDir: join(buildDir, 'src'), workDir: join(buildDir, 'work'), buildDir, cacheDir: cache, args: [], arch, manifest: {}, progress: (e) => events.push(e) };
}

/** Writes a file (and its folders) inside a crafted root. */
function put(root: string, guestPath: string, content = '# stdlib\n'): void {
  mkdirSync(dirname(join(root, guestPath)), { recursive: true });
  writeFileSync(join(root, guestPath), content);
}

function link(root: string, guestPath: string, target: string): void {
  mkdirSync(dirname(join(root, guestPath)), { recursive: true });
  symlinkSync(target, join(root, guestPath));
}

test('python builds for both architectures; the description says where the other one comes from', () => {
  assert.deepEqual([...pythonCompiler.arches].sort(), ['amd64', 'arm64']);
  assert.match(pythonCompiler.description, /other architecture .*Debian's python3\.11 build for it/);
});

test("a crafted root: its stdlib's links to host paths resolve inside the root, or to nothing", async () => {
  const root = join(dir, 'root-links');
  put(root, `${STDLIB}/os.py`);
  put(root, `${STDLIB}/http/server.py`);
  put(root, `${STDLIB}/lib-dynload/_fake.cpython-311-aarch64-linux-gnu.so`, 'not read by the walk');
  put(root, `${STDLIB}/test/test_os.py`);
  put(root, `${STDLIB}/config-3.11-aarch64-linux-gnu/Makefile`);
  put(root, '/usr/share/pyshared/shared.py', '# the root\'s own\n');
  // the host has all of these: inside the root they must mean the root's, or nothing
  link(root, `${STDLIB}/sitecustomize.py`, '/etc/python3.11/sitecustomize.py');
  link(root, `${STDLIB}/passwd.py`, '/etc/passwd');
  link(root, `${STDLIB}/hostlibc.py`, '/usr/lib/x86_64-linux-gnu/libc.so.6');
  link(root, `${STDLIB}/hostpython.py`, realpathSync('/usr/bin/python3.11'));
  link(root, `${STDLIB}/climb.py`, `${'../'.repeat(30)}etc/passwd`);
  link(root, `${STDLIB}/outdir`, '/usr/lib/python3.11');
  // absolute links to the root's own files: the stdlib one stays a link, the /usr one is copied from the root
  link(root, `${STDLIB}/http/alias.py`, '/usr/lib/python3.11/os.py');
  link(root, `${STDLIB}/shared.py`, '/usr/share/pyshared/shared.py');
  link(root, `${STDLIB}/sibling.py`, 'os.py');

  const { entries, dynload } = await foreignStdlib(root, 'arm64');
  const realRoot = realpathSync(root);
  for (const s of fileSources(entries)) assert.ok(containedIn(realRoot, s), `${s} is outside the root`);
  for (const d of dynload) assert.ok(containedIn(realRoot, d.source), `${d.source} is outside the root`);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const p of ['sitecustomize.py', 'passwd.py', 'hostlibc.py', 'hostpython.py', 'climb.py', 'outdir', 'test/test_os.py', 'config-3.11-aarch64-linux-gnu/Makefile'])
    assert.equal(byPath.get(`${STDLIB}/${p}`), undefined, `${p} is left out`);
  assert.deepEqual(byPath.get(`${STDLIB}/http/alias.py`), { kind: 'symlink', path: `${STDLIB}/http/alias.py`, target: `${STDLIB}/os.py` });
  assert.deepEqual(byPath.get(`${STDLIB}/sibling.py`), { kind: 'symlink', path: `${STDLIB}/sibling.py`, target: 'os.py' });
  assert.deepEqual(byPath.get(`${STDLIB}/shared.py`), { kind: 'file', path: `${STDLIB}/shared.py`, source: join(realRoot, 'usr/share/pyshared/shared.py'), mode: 0o644 });
  assert.equal(byPath.get(`${STDLIB}/os.py`)?.kind, 'file');
  assert.deepEqual(dynload, [{ source: join(realRoot, STDLIB, 'lib-dynload/_fake.cpython-311-aarch64-linux-gnu.so'), guestPath: `${STDLIB}/lib-dynload/_fake.cpython-311-aarch64-linux-gnu.so` }]);

  // the root's own /etc file is not a system file: left out, as the host's build leaves the host's out
  put(root, '/etc/python3.11/sitecustomize.py', '# the root\'s\n');
  assert.equal((await foreignStdlib(root, 'arm64')).entries.find((e) => e.path === `${STDLIB}/sitecustomize.py`), undefined);
});

test('a crafted root whose stdlib folder leads to the host is refused, never walked', async () => {
  const cases: [string, (root: string) => void][] = [
    ['the stdlib folder links to the host\'s', (r) => link(r, STDLIB, STDLIB)],
    ['/usr/lib links to the host\'s', (r) => link(r, '/usr/lib', '/usr/lib')],
    ['/usr climbs out', (r) => link(r, '/usr', `${'../'.repeat(30)}usr`)],
    ['nothing there', (r) => mkdirSync(r, { recursive: true })],
  ];
  for (const [name, make] of cases) {
    const root = join(dir, `root-out-${name.replace(/\W/g, '')}`);
    mkdirSync(root, { recursive: true });
    make(root);
    await assert.rejects(foreignStdlib(root, 'arm64'), withCode('NO_PYTHON'), name);
  }
});

test('extension modules: one whose library is not in the packages is skipped with a warning; a wrong-architecture one is refused', { skip: existsSync('/usr/aarch64-linux-gnu/lib/libc.so.6') ? false : 'needs the aarch64 cross toolchain (gcc-aarch64-linux-gnu)' }, async () => {
  const root = join(dir, 'root-modules');
  mkdirSync(join(root, 'lib', 'aarch64-linux-gnu'), { recursive: true });
  for (const f of ['ld-linux-aarch64.so.1', 'libc.so.6']) copyFileSync(join('/usr/aarch64-linux-gnu/lib', f), join(root, 'lib', 'aarch64-linux-gnu', f));
  symlinkSync('aarch64-linux-gnu/ld-linux-aarch64.so.1', join(root, 'lib', 'ld-linux-aarch64.so.1'));
  const dynload = join(root, STDLIB, 'lib-dynload');
  mkdirSync(dynload, { recursive: true });
  writeFileSync(join(dir, 'm.c'), 'int missing(void);\nint f(void) { return missing(); }\n');
  const module = (name: string, cc: string, libs: string[]) => {
    const out = join(dynload, `${name}.so`);
    // the missing library exists only where it is linked from, never in the root
    execFileSync(cc, ['-shared', '-fPIC', '-o', out, join(dir, 'm.c'), ...libs]);
    return { source: out, guestPath: `${STDLIB}/lib-dynload/${name}.so` };
  };
  const stub = join(dir, 'stub');
  mkdirSync(stub);
  execFileSync('aarch64-linux-gnu-gcc', ['-shared', '-fPIC', '-Wl,-soname,libmissing.so.1', '-o', join(stub, 'libmissing.so.1'), '-x', 'c', '-'], { input: 'int missing(void) { return 1; }\n' });
  const good = module('_good', 'aarch64-linux-gnu-gcc', ['-Wl,--unresolved-symbols=ignore-all']);
  const needy = module('_needy', 'aarch64-linux-gnu-gcc', [`-L${stub}`, '-l:libmissing.so.1']);
  const events: ProgressEvent[] = [];
  assert.deepEqual(await extensionModules(realpathSync(root), [good, needy], 'arm64', (e) => events.push(e)), [good]);
  assert.equal(events.length, 1);
  assert.match(events[0]!.message, /^warning: skipping \/usr\/lib\/python3\.11\/lib-dynload\/_needy\.so: .*libmissing\.so\.1, which is not in the arm64 packages/);
  const amd = module('_amd64', 'gcc', ['-Wl,--unresolved-symbols=ignore-all']);
  await assert.rejects(extensionModules(realpathSync(root), [amd], 'arm64', () => {}), withCode('WRONG_ARCH'));
});

test("the host's architecture: still the host's own interpreter", { skip: !existsSync('/usr/bin/python3.11') || hostArch() !== 'amd64' ? 'needs an amd64 host with python3.11' : false }, async () => {
  const events: ProgressEvent[] = [];
  const app = await pythonCompiler.compile(compileContext(join(dir, 'no-cache'), 'amd64', events));
  const python = app.entries.find((e) => e.path === '/usr/bin/python3.11');
  assert.ok(python?.kind === 'file' && python.source === realpathSync('/usr/bin/python3.11'));
  assert.ok(events.some((e) => /^runtime: the daemon host's \/usr\/bin\/python3\.11/.test(e.message)), events.map((e) => e.message).join('\n'));
  assert.ok(!existsSync(join(dir, 'no-cache')), 'no Debian packages fetched for the host');
});

test('examples/python-http for arm64: Debian\'s arm64 interpreter, stdlib and libraries, nothing of the host', { skip: process.env.UNIK_TEST_OFFLINE ? 'UNIK_TEST_OFFLINE is set' : false, timeout: 10 * 60_000 }, async (t) => {
  const cache = mkdtempSync(join(dir, 'cache-'));
  const events: ProgressEvent[] = [];
  const ctx = compileContext(cache, 'arm64', events);
  const started = Date.now();
  const app = await pythonCompiler.compile(ctx);
  t.diagnostic(`compiled (packages fetched and unpacked) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${app.entries.length} entries`);
  const messages = events.map((e) => e.message);
  const runtime = messages.find((m) => m.startsWith('runtime: '));
  t.diagnostic(runtime ?? 'no runtime message');
  assert.match(runtime ?? '', /^runtime: Debian's python3\.11 3\.11\.\S+ for arm64/);
  assert.deepEqual(app.argv, ['/usr/bin/python3.11', '/app/app.py']);

  const files = new Map(app.entries.flatMap((e) => (e.kind === 'file' ? [[e.path, e.source] as const] : [])));
  // the interpreter, at the host's path, built for arm64
  const python = files.get('/usr/bin/python3.11');
  assert.ok(python, 'the interpreter');
  assert.equal(await elfMachine(python), ARM64);
  // every extension module is arm64, and the ones an HTTP server needs are there
  const modules = [...files].filter(([p]) => p.startsWith(`${STDLIB}/lib-dynload/`));
  assert.ok(modules.length > 20, `${modules.length} extension modules`);
  for (const [p, s] of modules) assert.equal(await elfMachine(s), ARM64, p);
  for (const m of ['_json', '_ssl', '_hashlib']) assert.ok(modules.some(([p]) => p.includes(`/${m}.cpython-311-aarch64-linux-gnu.so`)), m);
  // the loader, libc, and whatever the interpreter links (libpython too, if Debian's links it)
  assert.ok(files.has('/lib/ld-linux-aarch64.so.1'));
  assert.ok(files.has('/lib/aarch64-linux-gnu/libc.so.6'));
  const names = new Set([...files.keys()].map((p) => p.split('/').pop()));
  for (const n of (await readElfDynamic(python)).needed) assert.ok(names.has(n), `the interpreter needs ${n}`);
  for (const [p, s] of files) if (/\.so(\.|$)/.test(p)) assert.equal(await elfMachine(s), ARM64, p);
  // the standard library at the usual guest paths, without what is skipped
  assert.ok(files.has(`${STDLIB}/os.py`) && files.has(`${STDLIB}/http/server.py`));
  assert.ok(![...files.keys()].some((p) => p.startsWith(`${STDLIB}/test/`) || p.startsWith(`${STDLIB}/config-3.11-`)));

  // nothing from the host: every file is the root's or the upload's
  const roots = realpathSync(join(cache, 'debian-arm64', 'roots'));
  const upload = realpathSync(ctx.sourceDir);
  for (const [p, s] of files) {
    assert.ok(containedIn(roots, s) || containedIn(upload, s), `${p} comes from ${s}`);
    assert.ok(!/^\/(usr|etc|lib|lib64|bin|sbin|opt)\//.test(s), `${p} comes from the host's ${s}`);
  }
  rmSync(cache, { recursive: true, force: true });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
