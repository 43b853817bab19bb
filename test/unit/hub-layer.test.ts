// The strict layer unpacker: every hostile entry kind is refused, and nothing lands outside the
// tree it was given (a canary folder beside it stays empty).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkUnpacked, entryName, unpackBudget, unpackLayer } from '../../src/hub/layer.js';
import { gz, gzipBomb, tarOf, type TarEntry } from '../integration/oci-craft.js';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'unik-layer-'));
  const tree = join(dir, 'pull', 'tree');
  const canary = join(dir, 'canary');
  mkdirSync(tree, { recursive: true });
  mkdirSync(canary);
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'THE-SECRET-BYTES');
  return { dir, tree, canary, secret, done: () => rmSync(dir, { recursive: true, force: true }) };
}

async function unpack(entries: TarEntry[] | Buffer, t: ReturnType<typeof setup>, mediaType = GZ, budget = 64 << 20) {
  const blob = Buffer.isBuffer(entries) ? entries : mediaType === GZ ? gz(tarOf(entries)) : tarOf(entries);
  const file = join(t.dir, 'pull', 'layer');
  writeFileSync(file, blob);
  return unpackLayer(file, mediaType, t.tree, { bytesLeft: budget }, 'layer 0');
}

/** Everything under a folder, as relative paths. */
function walk(dir: string, base = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [`${base}${e.name}/`, ...walk(join(dir, e.name), `${base}${e.name}/`)] : [`${base}${e.name}`]));
}

test('a unik layer unpacks its known files as regular files; unknown files under unik/ are read past, not written', async () => {
  const t = setup();
  try {
    await unpack([{ name: './', type: '5' }, { name: 'unik/', type: '5' }, { name: 'unik/kernel', data: Buffer.from('K') }, { name: './unik/root.cpio', data: Buffer.from('R') }, { name: 'unik/manifest.json', data: Buffer.from('{}') }, { name: 'urunc.json', data: Buffer.from('{}') }, { name: 'unik/future-file', data: Buffer.from('F') }], t);
    assert.deepEqual(walk(t.tree).sort(), ['unik/', 'unik/kernel', 'unik/manifest.json', 'unik/root.cpio', 'urunc.json']);
    assert.equal(readFileSync(join(t.tree, 'unik/root.cpio'), 'utf8'), 'R');
    const sizes = await checkUnpacked(t.tree, ['unik/kernel', 'unik/root.cpio', 'unik/manifest.json'], 'x');
    assert.deepEqual(sizes, { 'unik/kernel': 1, 'unik/root.cpio': 1, 'unik/manifest.json': 2 });
    // an uncompressed tar layer too
    await unpack([{ name: 'unik/kernel', data: Buffer.from('K2') }], t, TAR);
    assert.equal(readFileSync(join(t.tree, 'unik/kernel'), 'utf8'), 'K2', 'a later layer replaces a file, as OCI layers do');
  } finally {
    t.done();
  }
});

const hostile: [string, (t: ReturnType<typeof setup>) => TarEntry[], RegExp][] = [
  ['a symlink named unik/kernel to a secret file', (t) => [{ name: 'unik/kernel', type: '2', linkname: t.secret }], /type SymbolicLink.*only regular files/],
  ['a hard link to a secret file', (t) => [{ name: 'unik/kernel', type: '1', linkname: t.secret }], /type Link/],
  ['a relative symlink out of the tree', () => [{ name: 'unik/root.cpio', type: '2', linkname: '../../canary/x' }], /type SymbolicLink/],
  ['a ../ name', () => [{ name: '../../canary/x', data: Buffer.from('escaped') }], /not a plain path inside the image/],
  ['a ../ name inside unik/', () => [{ name: 'unik/../../../canary/x', data: Buffer.from('escaped') }], /not a plain path/],
  ['an absolute name', (t) => [{ name: `${t.canary}/x`, data: Buffer.from('escaped') }], /absolute name/],
  ['a file outside unik/', () => [{ name: 'etc/passwd', data: Buffer.from('root::0:0') }], /outside unik\//],
  ['a directory outside unik/', () => [{ name: 'etc/', type: '5' }], /directory "etc" outside unik\//],
  ['a character device', () => [{ name: 'unik/kernel', type: '3' }], /type CharacterDevice/],
  ['a fifo', () => [{ name: 'unik/kernel', type: '6' }], /type FIFO/],
  ['a manifest.json over its cap', () => [{ name: 'unik/manifest.json', data: Buffer.alloc((1 << 20) + 1) }], /at most 1048576/],
  ['the same file twice', () => [{ name: 'unik/kernel', data: Buffer.from('a') }, { name: 'unik/kernel', data: Buffer.from('b') }], /holds unik\/kernel twice/],
  ['an unknown entry type', () => [{ name: 'unik/kernel', type: 'Z' }], /cannot read/],
];

for (const [what, entries, message] of hostile)
  test(`refused: ${what}; nothing is written outside the tree`, async () => {
    const t = setup();
    try {
      await assert.rejects(unpack(entries(t), t), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'UNIK_ERR_BAD_IMAGE');
        assert.match(e.message, message);
        return true;
      });
      assert.deepEqual(readdirSync(t.canary), [], 'the canary folder is untouched');
      assert.deepEqual(readdirSync(t.dir).sort(), ['canary', 'pull', 'secret']);
      for (const f of walk(t.tree)) assert.ok(!lstatSync(join(t.tree, f)).isSymbolicLink(), `${f} is no link`);
      assert.ok(!existsSync(join(t.tree, 'unik/kernel')) || readFileSync(join(t.tree, 'unik/kernel'), 'utf8') !== 'THE-SECRET-BYTES');
    } finally {
      t.done();
    }
  });

test('a gzip bomb is cut off at the budget, long before it is unpacked', async () => {
  const t = setup();
  try {
    const bomb = await gzipBomb('unik/kernel', 256 << 20);
    assert.ok(bomb.length < 1 << 20, `small on the wire (${bomb.length} bytes)`);
    const budget = unpackBudget(bomb.length, 2 ** 31);
    assert.ok(budget.bytesLeft < 256 << 20);
    const started = Date.now();
    await assert.rejects(unpack(bomb, t, GZ, budget.bytesLeft), /decompression bomb/);
    assert.ok(Date.now() - started < 20_000);
    const left = existsSync(join(t.tree, 'unik/kernel')) ? lstatSync(join(t.tree, 'unik/kernel')).size : 0;
    assert.ok(left <= budget.bytesLeft, `at most the budget was written (${left})`);
  } finally {
    t.done();
  }
});

test('a layer compressed twice is refused (tar would unzip it again past the byte counter)', async () => {
  const t = setup();
  try {
    await assert.rejects(unpack(gz(gz(tarOf([{ name: 'unik/kernel', data: Buffer.from('K') }]))), t), /compressed twice/);
  } finally {
    t.done();
  }
});

test('not a tar at all, or a truncated tar: a clear error', async () => {
  const t = setup();
  try {
    await assert.rejects(unpack(gz(Buffer.from('hello, not a tar '.repeat(100))), t), /BAD_IMAGE|not a valid/);
    const tar = tarOf([{ name: 'unik/kernel', data: Buffer.alloc(4096, 1) }]);
    await assert.rejects(unpack(gz(tar.subarray(0, 1500)), t), /not a valid tar.gz layer/);
  } finally {
    t.done();
  }
});

test('after unpacking, a missing file is named', async () => {
  const t = setup();
  try {
    await unpack([{ name: 'unik/kernel', data: Buffer.from('K') }], t);
    await assert.rejects(checkUnpacked(t.tree, ['unik/kernel', 'unik/root.cpio'], 'img'), /has no \/unik\/root\.cpio/);
  } finally {
    t.done();
  }
});

test('entry names are canonicalised before they are checked', () => {
  assert.equal(entryName('./unik/kernel', 'x'), 'unik/kernel');
  assert.equal(entryName('unik/', 'x'), 'unik');
  assert.equal(entryName('./', 'x'), '');
  for (const bad of ['/unik/kernel', 'unik//kernel', 'unik/./kernel', 'unik/../kernel', '..', 'unik\\kernel', 'unik/k\0'])
    assert.throws(() => entryName(bad, 'x'), /UNIK_ERR_BAD_IMAGE|absolute|plain path|NUL/, bad);
});
