// The start-up sweep: exactly the orphans a crash leaves and the oldest cache entries past the
// limit go; records' files, sockets of known instances, the guest init, the module cache and
// kernels stay; a symlink is removed as a link and nothing outside the home is touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cacheLimitBytes, sweepHome } from '../../src/core/sweep.js';
import { unikPaths } from '../../src/model/paths.js';
import type { UnikError } from '../../src/model/errors.js';

const KB = 1024;
const INSTANCE = '0123456789abcdef' + 'f'.repeat(48);
const IMAGE = 'a'.repeat(64);

function setup() {
  const base = mkdtempSync(join(tmpdir(), 'unik-sweep-'));
  const home = join(base, 'home');
  const outside = join(base, 'outside');
  const kernels = join(home, 'kernels');
  const paths = { ...unikPaths(home), kernels };
  const file = (rel: string, bytes = 10, ageDays?: number) => {
    const p = join(base, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, Buffer.alloc(bytes, 1));
    if (ageDays !== undefined) {
      const t = new Date(Date.now() - ageDays * 86_400_000);
      utimesSync(p, t, t);
    }
  };
  const dir = (rel: string) => mkdirSync(join(base, rel), { recursive: true });
  const link = (target: string, rel: string) => {
    mkdirSync(dirname(join(base, rel)), { recursive: true });
    symlinkSync(target, join(base, rel));
  };
  return { base, home, outside, paths, file, dir, link, at: (rel: string) => existsSync(join(base, rel)) || isLink(join(base, rel)) };
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

test('the sweep removes exactly the orphans and the oldest cache entries past the limit', () => {
  const t = setup();
  try {
    // outside the home: must survive, whatever points at it
    t.file('outside/secret', 5);
    t.file('outside/x.tmp-1/keep', 5);
    t.file('outside/big.cpio.zst', 500 * KB, 100);

    // tmp/: everything goes, a symlink as a link
    t.file('home/tmp/build-0123/gocache/aa/entry-d', 3 * KB);
    t.file('home/tmp/pull-x', 7);
    t.link(join(t.base, 'outside'), 'home/tmp/link-out');
    t.link(join(t.base, 'outside', 'secret'), 'home/tmp/link-file');

    // images/: stages and half-made templates go; whole snapshots, oci/ and records' files stay
    t.file(`home/images/.tmp-${'b'.repeat(64)}/root.cpio`, 100);
    t.file(`home/images/${IMAGE}/kernel`, 100);
    t.file(`home/images/${IMAGE}/oci/artifact.json`, 10);
    t.file(`home/images/${IMAGE}/oci.tmp-42-1700000000000/tree/unik/kernel`, 100);
    t.file(`home/images/${IMAGE}/snapshots/64m-tcg/ram`, 100);
    t.file(`home/images/${IMAGE}/snapshots/64m-tcg.tmp-42-deadbeef/ram`, 200);
    t.file(`home/images/${IMAGE}/snapshots/128m-kvm-tap.tmp-43-cafe0123/state`, 50);
    // a snapshots folder that is a symlink out of the home is never entered
    const other = 'c'.repeat(64);
    t.file(`home/images/${other}/kernel`, 1);
    t.link(join(t.base, 'outside'), `home/images/${other}/snapshots`);

    // volumes/: stages go, volumes stay
    t.file('home/volumes/.tmp-0a0a/disk.img', 100);
    t.file('home/volumes/0b0b/disk.img', 100);

    // sock/: templates' and unknown instances' go; a known instance's and foreign names stay
    t.file('home/sock/tpl-0123456789ab.qmp', 0);
    t.file('home/sock/tpl-0123456789ab.ctl', 0);
    t.file(`home/sock/${INSTANCE.slice(0, 16)}.ctl`, 0);
    t.file(`home/sock/${INSTANCE.slice(0, 16)}.qmp`, 0);
    t.file('home/sock/fedcba9876543210.ctl', 0);
    t.file('home/sock/supervisor.sock', 0);

    // cache/: partials go; then oldest first until 200 KB fit
    t.file('home/cache/zstd/1111.cpio.zst', 100 * KB, 30); // oldest: goes
    t.file('home/cache/zstd/2222.cpio.zst', 100 * KB, 1); // newest: stays
    t.file('home/cache/zstd/3333.cpio.zst.777.tmp', 10 * KB, 0); // partial: goes
    t.link(join(t.base, 'outside', 'big.cpio.zst'), 'home/cache/zstd/4444.cpio.zst'); // counts as a link's size only
    t.file('home/cache/go-std/k-old/cache/00/a-d', 60 * KB, 20); // a whole go-std key goes at once…
    t.file('home/cache/go-std/k-old/cache/01/b-d', 60 * KB, 20);
    t.file('home/cache/go-std/k-old/packages.txt', 1 * KB, 20);
    t.file('home/cache/go-std/k-new/cache/00/a-d', 60 * KB, 2);
    t.file('home/cache/go-std/k-new/packages.txt', 1 * KB, 0.5); // …and its newest file dates it
    t.file('home/cache/jlink/j-old/jre/lib/modules', 80 * KB, 10); // goes (10 days)
    t.file('home/cache/jlink/j-old/ok', 1, 10);
    t.file('home/cache/jlink/.tmp-abcdef/jre/x', 5 * KB, 0); // partial: goes
    t.file('home/cache/jlink/j-new/ok', 1 * KB, 0); // stays
    // never evicted, however old and big
    t.file('home/cache/init/0000/init', 200 * KB, 400);
    t.file('home/cache/gopath/pkg/mod/x', 200 * KB, 400);
    t.file('home/kernels/abcd/bzImage', 200 * KB, 400);

    const logs: string[] = [];
    const r = sweepHome({ paths: t.paths, instanceIds: [INSTANCE], cacheLimitBytes: 200 * KB, log: (m) => logs.push(m) });

    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      [...r.removed].sort(),
      [
        'tmp/build-0123',
        'tmp/pull-x',
        'tmp/link-out',
        'tmp/link-file',
        `images/.tmp-${'b'.repeat(64)}`,
        `images/${IMAGE}/oci.tmp-42-1700000000000`,
        `images/${IMAGE}/snapshots/64m-tcg.tmp-42-deadbeef`,
        `images/${IMAGE}/snapshots/128m-kvm-tap.tmp-43-cafe0123`,
        'volumes/.tmp-0a0a',
        'sock/tpl-0123456789ab.qmp',
        'sock/tpl-0123456789ab.ctl',
        'sock/fedcba9876543210.ctl',
        'cache/zstd/3333.cpio.zst.777.tmp',
        'cache/jlink/.tmp-abcdef',
        'cache/zstd/1111.cpio.zst',
        'cache/go-std/k-old',
        'cache/jlink/j-old',
      ].sort(),
    );
    for (const gone of r.removed) assert.equal(t.at(`home/${gone}`), false, `${gone} is gone`);

    // before eviction: 100+100+121+61+80+1 KB, 1 byte and a link ≈ 463 KB; the oldest (1111, k-old, j-old) go → ≈ 162 KB
    assert.equal(r.cache.count, 3);
    assert.equal(r.cache.bytes, 100 * KB + 121 * KB + 80 * KB + 1);
    assert.equal(r.orphans.count, 14);
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /removed 14 orphans \(.*\) and 3 cache entries \(301\.0 KB\) over the cache limit of 200\.0 KB/);

    for (const kept of [
      `images/${IMAGE}/kernel`,
      `images/${IMAGE}/oci/artifact.json`,
      `images/${IMAGE}/snapshots/64m-tcg/ram`,
      `images/${other}/kernel`,
      'volumes/0b0b/disk.img',
      `sock/${INSTANCE.slice(0, 16)}.ctl`,
      `sock/${INSTANCE.slice(0, 16)}.qmp`,
      'sock/supervisor.sock',
      'cache/zstd/2222.cpio.zst',
      'cache/zstd/4444.cpio.zst',
      'cache/go-std/k-new/packages.txt',
      'cache/jlink/j-new/ok',
      'cache/init/0000/init',
      'cache/gopath/pkg/mod/x',
      'kernels/abcd/bzImage',
    ])
      assert.ok(t.at(`home/${kept}`), `${kept} stays`);
    assert.ok(isLink(join(t.home, 'images', other, 'snapshots')), 'a symlinked snapshots folder is left alone');
    assert.ok(existsSync(join(t.home, 'tmp')), 'tmp/ itself stays');

    // the symlinks' targets, and everything else outside the home, are untouched
    assert.equal(readFileSync(join(t.outside, 'secret')).length, 5);
    assert.ok(existsSync(join(t.outside, 'x.tmp-1', 'keep')));
    assert.equal(readFileSync(join(t.outside, 'big.cpio.zst')).length, 500 * KB);

    // a second sweep finds nothing and says nothing
    const again = sweepHome({ paths: t.paths, instanceIds: [INSTANCE], cacheLimitBytes: 200 * KB, log: (m) => logs.push(m) });
    assert.deepEqual(again.removed, []);
    assert.equal(logs.length, 1);
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('a tmp that is a symlink out of the home is unlinked and made again as a folder', () => {
  const t = setup();
  try {
    t.file('outside/keep', 3);
    t.dir('home');
    t.link(t.outside, 'home/tmp');
    const r = sweepHome({ paths: t.paths, instanceIds: [] });
    assert.deepEqual(r.removed, ['tmp']);
    assert.ok(lstatSync(join(t.home, 'tmp')).isDirectory());
    assert.ok(existsSync(join(t.outside, 'keep')), 'the target is untouched');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('kernels kept under cache/ (UNIK_KERNEL_CACHE) are never evicted', () => {
  const t = setup();
  try {
    const paths = { ...t.paths, kernels: join(t.home, 'cache', 'go-std', 'kernels') };
    t.file('home/cache/go-std/kernels/abcd/bzImage', 100 * KB, 100);
    t.file('home/cache/go-std/k1/packages.txt', 100 * KB, 50);
    const r = sweepHome({ paths, instanceIds: [], cacheLimitBytes: 0 });
    assert.deepEqual(r.removed, ['cache/go-std/k1']);
    assert.ok(t.at('home/cache/go-std/kernels/abcd/bzImage'));
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('UNIK_CACHE_MAX_MB: default 4096 MB, a number of MB, or a clear error', () => {
  assert.equal(cacheLimitBytes({}), 4096 * 2 ** 20);
  assert.equal(cacheLimitBytes({ UNIK_CACHE_MAX_MB: '0.5' }), 2 ** 19);
  assert.equal(cacheLimitBytes({ UNIK_CACHE_MAX_MB: '0' }), 0);
  for (const bad of ['-1', 'lots', '1e999'])
    assert.throws(
      () => cacheLimitBytes({ UNIK_CACHE_MAX_MB: bad }),
      (e: UnikError) => e.kind === 'InvalidArgument' && /UNIK_CACHE_MAX_MB/.test(e.message),
    );
});

test("another architecture's Debian packages: unpacked roots and downloaded .debs are evicted oldest first, half-made roots go, apt's lists stay", () => {
  const t = setup();
  try {
    t.file('home/cache/debian-arm64/roots/old-root/usr/bin/node', 100 * KB, 10); // goes
    t.file('home/cache/debian-arm64/roots/new-root/usr/bin/webfsd', 50 * KB, 0); // stays
    t.file('home/cache/debian-arm64/roots/.tmp-abc-42/usr/lib/x', 5 * KB, 0); // half-made: goes
    t.file('home/cache/debian-arm64/cache/archives/nodejs_18_arm64.deb', 90 * KB, 9); // goes
    t.file('home/cache/debian-arm64/cache/archives/webfs_1_arm64.deb', 10 * KB, 0); // stays
    t.file('home/cache/debian-arm64/state/lists/deb.debian.org_Packages', 300 * KB, 30); // never: apt's own state
    const r = sweepHome({ paths: t.paths, instanceIds: [], cacheLimitBytes: 100 * KB });
    assert.deepEqual(r.errors, []);
    assert.deepEqual([...r.removed].sort(), ['cache/debian-arm64/cache/archives/nodejs_18_arm64.deb', 'cache/debian-arm64/roots/.tmp-abc-42', 'cache/debian-arm64/roots/old-root'].sort());
    for (const kept of ['roots/new-root/usr/bin/webfsd', 'cache/archives/webfs_1_arm64.deb', 'state/lists/deb.debian.org_Packages']) assert.ok(t.at(`home/cache/debian-arm64/${kept}`), kept);
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});
