// Node.js images for the architecture the daemon host is not (arm64 on an amd64 host): the
// runtime is Debian's nodejs package for it, with the loader and libraries its ELF headers
// name, all read from the unpacked packages; the app's native addons must be built for it, and
// a library one ships beside itself is found in the upload. Nothing of the host's goes in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containedIn } from '../../src/util/safe-path.js';
import { elfMachine, foreignElfClosure } from '../../src/compilers/elf-deps.js';
import { ensureDebianPackages } from '../../src/compilers/debian-packages.js';
import { HOST_ONLY } from '../../src/compilers/host-arch.js';
import { nodejsCompiler, sharedBuiltins } from '../../src/compilers/nodejs.js';
import type { CompileContext, RootEntry } from '../../src/compilers/types.js';
import type { ProgressEvent } from '../../src/model/types.js';

const dir = mkdtempSync(join(tmpdir(), 'unik-nodejs-foreign-'));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const NODE_HTTP = join(REPO, 'examples', 'node-http');
const CROSS_SYSROOT = '/usr/aarch64-linux-gnu';
/** the shared unik cache, so Debian's nodejs is fetched once rather than on every run */
const DEBIAN_CACHE = process.env.UNIK_TEST_DEBIAN_CACHE || join(homedir(), '.unik', 'cache');
const ARM64 = 183;
/** these tests build arm64 images as the foreign architecture: an amd64 host's view */
const notAmd64Host = HOST_ONLY[0] !== 'amd64' ? 'the daemon host is not amd64' : false;
const offline = process.env.UNIK_TEST_OFFLINE ? 'UNIK_TEST_OFFLINE is set' : false;

/** An assert.rejects check on a UnikError's stable code (messages are for people). */
const withCode = (code: string, message?: RegExp | string) => (e: unknown) => {
  const text = (e as Error).message;
  return (e as { code?: string }).code === `UNIK_ERR_${code}` && (message === undefined || (typeof message === 'string' ? text.includes(message) : message.test(text)));
};

function compile(cc: string, out: string, args: string[]): string {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync(cc, [...args, '-o', out]);
  return out;
}

writeFileSync(join(dir, 'addon.c'), 'int pad(void);\nint addon_value(void) { return pad(); }\n');
writeFileSync(join(dir, 'pad.c'), 'int pad(void) { return 1; }\n');
const PAD = 'libunikpad.so.1';

/** An upload: examples/node-http, and optionally a native addon at node_modules/fake/build/Release. */
function upload(name: string): { ctx: CompileContext; events: ProgressEvent[]; release: string } {
  const buildDir = mkdtempSync(join(dir, `${name}-`));
  const sourceDir = join(buildDir, 'src');
  cpSync(NODE_HTTP, sourceDir, { recursive: true });
  mkdirSync(join(buildDir, 'work'));
  const events: ProgressEvent[] = [];
  const ctx: CompileContext = { sourceDir, workDir: join(buildDir, 'work'), buildDir, cacheDir: DEBIAN_CACHE, args: [], arch: 'arm64', manifest: {}, progress: (e) => events.push(e) };
  return { ctx, events, release: join(sourceDir, 'node_modules', 'fake', 'build', 'Release') };
}

/** An arm64 addon needing a library it ships beside itself, found through RUNPATH $ORIGIN. */
function arm64AddonWithLibrary(release: string): void {
  compile('aarch64-linux-gnu-gcc', join(release, PAD), ['-shared', '-fPIC', `-Wl,-soname,${PAD}`, join(dir, 'pad.c')]);
  compile('aarch64-linux-gnu-gcc', join(release, 'fake.node'), ['-shared', '-fPIC', join(dir, 'addon.c'), '-Wl,--no-as-needed', `-L${release}`, `-l:${PAD}`, '-Wl,-rpath,$ORIGIN', '-Wl,--enable-new-dtags']);
}

function assertFromRootOrUpload(roots: string[], entries: RootEntry[]): void {
  for (const e of entries) if (e.kind === 'file') assert.ok(roots.some((r) => containedIn(r, realpathSync(e.source))), `${e.path} comes from ${e.source}, outside ${roots.join(' and ')}`);
}

test('nodejs builds for both architectures; the description says where the other one\'s runtime comes from', () => {
  assert.deepEqual([...nodejsCompiler.arches].sort(), ['amd64', 'arm64']);
  assert.match(nodejsCompiler.description, /Debian's nodejs package/);
  assert.match(nodejsCompiler.description, new RegExp(`For ${HOST_ONLY[0] === 'amd64' ? 'arm64' : 'amd64'} the runtime is Debian's`));
});

test('an amd64 native addon in an arm64 image is refused by name, before anything is downloaded', { skip: notAmd64Host }, async () => {
  const { ctx, release } = upload('amd64-addon');
  compile('gcc', join(release, 'fake.node'), ['-shared', '-fPIC', join(dir, 'pad.c')]);
  const noCache = join(dir, 'never-made-cache');
  await assert.rejects(nodejsCompiler.compile({ ...ctx, cacheDir: noCache }), withCode('WRONG_ARCH', 'the native addon node_modules/fake/build/Release/fake.node is built for amd64, but the image is for arm64'));
  assert.ok(!existsSync(noCache), 'nothing fetched for a refused build');
  // a 32-bit ARM one is no better
  const arm32 = upload('arm32-addon');
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 1; // ELFCLASS32
  elf[5] = 1;
  mkdirSync(arm32.release, { recursive: true });
  writeFileSync(join(arm32.release, 'fake.node'), elf);
  await assert.rejects(nodejsCompiler.compile({ ...arm32.ctx, cacheDir: noCache }), withCode('WRONG_ARCH', 'fake.node is not a 64-bit little-endian ELF file'));
});

test('an uploaded file\'s $ORIGIN library is found in the upload (the /app mount); links out of it find nothing', async () => {
  // a root with the cross toolchain's loader and libc, as Debian's arm64 root has them
  const root = join(dir, 'root');
  mkdirSync(join(root, 'lib', 'aarch64-linux-gnu'), { recursive: true });
  for (const f of ['ld-linux-aarch64.so.1', 'libc.so.6']) copyFileSync(join(CROSS_SYSROOT, 'lib', f), join(root, 'lib', 'aarch64-linux-gnu', f));
  symlinkSync('aarch64-linux-gnu/ld-linux-aarch64.so.1', join(root, 'lib', 'ld-linux-aarch64.so.1'));
  const { ctx, release } = upload('mount');
  arm64AddonWithLibrary(release);
  const addon = { source: join(release, 'fake.node'), guestPath: '/app/node_modules/fake/build/Release/fake.node' };
  const mounts = [{ guestDir: '/app', hostDir: ctx.sourceDir }];
  const entries = await foreignElfClosure(root, [addon], [], 'arm64', { mounts });
  const lib = entries.find((e) => e.path === `/app/node_modules/fake/build/Release/${PAD}`);
  assert.ok(lib?.kind === 'file' && lib.source === realpathSync(join(release, PAD)), JSON.stringify(entries));
  assertFromRootOrUpload([realpathSync(root), realpathSync(ctx.sourceDir)], entries);
  // without the mount it is not in the packages
  await assert.rejects(foreignElfClosure(root, [addon], [], 'arm64'), withCode('LIBRARY_NOT_FOUND', PAD));

  // the shipped library a link to a host file, or to a file beside the upload: not found
  const outside = join(dir, 'outside');
  compile('aarch64-linux-gnu-gcc', join(outside, PAD), ['-shared', '-fPIC', `-Wl,-soname,${PAD}`, join(dir, 'pad.c')]);
  for (const target of [join(outside, PAD), `../../../../../outside/${PAD}`]) {
    rmSync(join(release, PAD));
    symlinkSync(target, join(release, PAD));
    await assert.rejects(foreignElfClosure(root, [addon], [], 'arm64', { mounts }), withCode('LIBRARY_NOT_FOUND', PAD), target);
  }
});

test('examples/node-http for arm64: Debian\'s arm64 node and libnode, every file from the packages or the upload', { skip: notAmd64Host || offline, timeout: 10 * 60_000 }, async (t) => {
  const { ctx, events, release } = upload('node-http');
  const started = Date.now();
  const app = await nodejsCompiler.compile(ctx);
  t.diagnostic(`compiled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const said = events.map((e) => e.message).join('\n');
  const runtime = /^runtime: Debian's nodejs (\d+\.\d+\.\d+) for arm64 \(package (\S+)\)$/m.exec(said);
  assert.ok(runtime, said);
  t.diagnostic(runtime[0]);
  assert.deepEqual(app.argv, ['/usr/bin/node', '/app/server.js']);

  const root = realpathSync(await ensureDebianPackages(DEBIAN_CACHE, 'arm64', ['nodejs'], () => {}));
  const node = app.entries.find((e) => e.path === '/usr/bin/node');
  assert.ok(node?.kind === 'file');
  assert.equal(await elfMachine(node.source), ARM64, 'the node binary is arm64');
  const paths = app.entries.map((e) => e.path);
  assert.ok(paths.some((p) => /\/libnode\.so\.\d+$/.test(p)), paths.join(' '));
  assert.ok(paths.includes('/lib/ld-linux-aarch64.so.1'), paths.join(' '));
  // the JavaScript Debian's libnode reads from files at run time
  assert.ok(paths.some((p) => p.startsWith('/usr/share/nodejs/')), paths.join(' '));
  assert.ok(paths.includes('/app/server.js') && paths.includes('/etc/nsswitch.conf'));
  assert.equal(new Set(paths).size, paths.length, 'each path once');
  assertFromRootOrUpload([root, realpathSync(ctx.sourceDir)], app.entries);
  for (const e of app.entries) if (e.kind === 'file' && /\.so(\.|$)/.test(e.path)) assert.equal(await elfMachine(e.source), ARM64, e.path);

  // with an arm64 addon shipping its own library: both from the upload, once each
  const withAddon = upload('node-http-addon');
  arm64AddonWithLibrary(withAddon.release);
  const app2 = await nodejsCompiler.compile(withAddon.ctx);
  const paths2 = app2.entries.map((e) => e.path);
  assert.equal(new Set(paths2).size, paths2.length, 'the shipped library is not added twice');
  assert.ok(paths2.includes(`/app/node_modules/fake/build/Release/${PAD}`));
  assert.match(withAddon.events.map((e) => e.message).join('\n'), /1 native addon\(s\)/);
  assertFromRootOrUpload([root, realpathSync(withAddon.ctx.sourceDir)], app2.entries);
  assert.ok(!existsSync(release), 'the plain upload has no addon');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("hostile: a libnode the upload ships names no builtin, and a builtin never replaces a file already going in", async () => {
  const root = mkdtempSync(join(dir, 'builtins-root-'));
  const upload = mkdtempSync(join(dir, 'builtins-upload-'));
  mkdirSync(join(root, 'usr/lib/aarch64-linux-gnu'), { recursive: true });
  mkdirSync(join(root, 'usr/share/nodejs/acorn'), { recursive: true });
  writeFileSync(join(root, 'usr/share/nodejs/acorn/acorn.js'), '// acorn\n');
  writeFileSync(join(root, 'usr/bin-node-in-root'), 'x');
  // Debian's libnode: its configuration string names a builtin, and (as a hostile one would) /usr/bin/node
  const config = (p: string) => `\0NODE_SHARED_BUILTIN_ACORN_PATH=${p}\0`;
  writeFileSync(join(root, 'usr/lib/aarch64-linux-gnu/libnode.so.108'), Buffer.concat([Buffer.alloc(5 << 20), Buffer.from(config('/usr/share/nodejs/acorn/acorn.js') + config('/usr/bin/node'))]));
  // the upload's libnode names a file of the root that would not otherwise go in
  writeFileSync(join(upload, 'libnode.so.108'), config('/usr/bin-node-in-root'));
  const libs: RootEntry[] = [
    { kind: 'file', path: '/usr/lib/aarch64-linux-gnu/libnode.so.108', source: join(root, 'usr/lib/aarch64-linux-gnu/libnode.so.108'), mode: 0o644 },
    { kind: 'file', path: '/app/node_modules/x/libnode.so.108', source: join(upload, 'libnode.so.108'), mode: 0o644 },
  ];
  const out = await sharedBuiltins(root, libs);
  // found past the first 4 MiB chunk; /usr/bin/node (already in the image) is not taken again
  assert.deepEqual(out.map((e) => e.path), ['/usr/share/nodejs/acorn/acorn.js']);
});
