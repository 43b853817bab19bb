// unik-runc's side of the trust boundary, without a VM: the boot-snapshot cache key is the
// digest of the bytes (not of the manifest), copies are verified, and a bundle's manifest and
// image files are checked field by field before anything uses them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkManifest } from '../../src/runtime/manifest-check.js';
import { entryFor, fileDigest, snapshotKey } from '../../src/runtime/snapshot-cache.js';
import { ImageError, loadBundleImage } from '../../src/runtime/image.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-runc-cache-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
process.env.UNIK_RUNC_CACHE = join(scratch, 'cache');

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

test('the cache key is the digest of kernel and root bytes: same manifest, other bytes, other key; copies are exact and private', async () => {
  const a = join(scratch, 'a');
  const b = join(scratch, 'b');
  for (const [dir, payload] of [[a, 'tenant A'], [b, 'tenant B']] as const) {
    mkdirSync(dir);
    writeFileSync(join(dir, 'kernel'), `kernel of ${payload}`);
    writeFileSync(join(dir, 'root.cpio'), `root of ${payload}`);
    writeFileSync(join(dir, 'manifest.json'), '{"the":"same manifest"}');
  }
  const ea = await entryFor(join(a, 'kernel'), join(a, 'root.cpio'));
  const eb = await entryFor(join(b, 'kernel'), join(b, 'root.cpio'));
  assert.notEqual(ea.key, eb.key);
  assert.equal(ea.key, snapshotKey(sha('kernel of tenant A'), sha('root of tenant A')));
  assert.equal(await fileDigest(join(a, 'kernel')), sha('kernel of tenant A'));
  assert.equal(readFileSync(ea.kernel, 'utf8'), 'kernel of tenant A');
  assert.equal(readFileSync(eb.root, 'utf8'), 'root of tenant B');
  assert.equal(statSync(ea.kernel).mode & 0o777, 0o600);
  assert.equal(statSync(ea.dir).mode & 0o777, 0o700);
  assert.equal(statSync(process.env.UNIK_RUNC_CACHE!).mode & 0o777, 0o700);
  // the same bytes in another bundle find the same entry
  const c = join(scratch, 'c');
  cpSync(a, c, { recursive: true });
  assert.equal((await entryFor(join(c, 'kernel'), join(c, 'root.cpio'))).key, ea.key);
  // the key frames the two digests: swapping kernel and root does not collide
  assert.notEqual(snapshotKey(sha('x'), sha('y')), snapshotKey(sha('y'), sha('x')));
});

const good = {
  schemaVersion: 1, id: 'x', name: 'web', created: '2024-01-01T00:00:00Z', arch: 'x86_64', base: 'linux', language: 'go', compiler: 'go', provider: 'qemu',
  kernel: { file: 'kernel', configHash: 'h', fragments: [], sizeBytes: 10 }, root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: 10 },
  argv: ['/app/web', '--port', '8080'], cwd: '/app', env: { PORT: '8080', GOGC: '50' }, mountPoints: ['/data'], defaultMemoryMb: 64,
};

test('manifest fields are checked before use; each refusal names its field', () => {
  assert.deepEqual(checkManifest(structuredClone(good)), good);
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['argv not an array', { argv: '/bin/sh -c x' }, /field "argv" must be an array of strings/],
    ['NUL in argv', { argv: ['/app/web', 'a\0b'] }, /field "argv\[1\]" contains a NUL byte/],
    ['number in argv', { argv: ['/app/web', 7] }, /field "argv\[1\]" must be a string, not number/],
    ['huge argument', { argv: ['/app/web', 'x'.repeat(70 * 1024)] }, /field "argv\[1\]" is longer than 65536 bytes/],
    ['too many arguments', { argv: Array(2000).fill('a') }, /field "argv" has more than 1024 entries/],
    ['env as array', { env: ['A=1'] }, /field "env" must be an object of strings/],
    ['env value not a string', { env: { A: { nested: 1 } } }, /field "env.A" must be a string, not object/],
    ['env name with =', { env: { 'A=B': '1' } }, /field "env" has an invalid variable name "A=B"/],
    ['NUL in env value', { env: { A: 'x\0y' } }, /field "env.A" contains a NUL byte/],
    ['relative cwd', { cwd: 'app' }, /field "cwd" must be an absolute path/],
    ['cwd with ..', { cwd: '/app/../../etc' }, /field "cwd" must not contain ".." segments/],
    ['mount point with ..', { mountPoints: ['/data/../../x'] }, /field "mountPoints\[0\]" must not contain/],
    ['memory not a number', { defaultMemoryMb: '64' }, /field "defaultMemoryMb" must be a whole number of MB/],
    ['memory huge', { defaultMemoryMb: 1e9 }, /field "defaultMemoryMb"/],
    ['name with control characters', { name: 'web\nlevel=error' }, /field "name" contains control characters/],
    ['negative size', { kernel: { sizeBytes: -1 } }, /field "kernel.sizeBytes" must be a whole number of bytes/],
    ['arch not a string', { arch: ['x86_64'] }, /field "arch" must be a string/],
  ];
  for (const [what, change, message] of bad) assert.throws(() => checkManifest({ ...structuredClone(good), ...change }), message, what);
  assert.throws(() => checkManifest([]), /must be a JSON object/);
  assert.throws(() => checkManifest(null), /must be a JSON object/);
});

test('a bundle whose image files lead outside its rootfs is refused before anything is read', () => {
  const rootfs = join(scratch, 'hostile', 'rootfs');
  mkdirSync(join(rootfs, 'unik'), { recursive: true });
  const secret = join(scratch, 'secret.cpio');
  writeFileSync(secret, 'SECRET-BYTES-THAT-MUST-NOT-BE-READ');
  writeFileSync(join(rootfs, 'unik', 'manifest.json'), JSON.stringify(good));
  writeFileSync(join(rootfs, 'unik', 'kernel'), 'k');
  symlinkSync(secret, join(rootfs, 'unik', 'root.cpio'));
  assert.throws(() => loadBundleImage(rootfs), (e: Error) => e instanceof ImageError && /\/unik\/root.cpio leads outside the container's rootfs/.test(e.message));
  // a manifest that is a link out, and one too big to read
  rmSync(join(rootfs, 'unik', 'manifest.json'));
  symlinkSync(join(scratch, 'a', 'manifest.json'), join(rootfs, 'unik', 'manifest.json'));
  assert.throws(() => loadBundleImage(rootfs), /manifest.json leads outside the container's rootfs/);
  rmSync(join(rootfs, 'unik', 'manifest.json'));
  writeFileSync(join(rootfs, 'unik', 'manifest.json'), ' '.repeat((1 << 20) + 1));
  assert.throws(() => loadBundleImage(rootfs), /manifest.json is 1048577 bytes, more than the 1048576/);
});
