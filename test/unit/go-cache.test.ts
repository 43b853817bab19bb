// The Go build cache the daemon (root) links into a build's folder: a symlink the build left there
// never has root chown or write through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linkCache } from '../../src/compilers/go.js';
import { buildUser } from '../../src/util/sandbox.js';

function setup() {
  const base = mkdtempSync(join(tmpdir(), 'unik-gocache-'));
  const shared = join(base, 'shared');
  const outside = join(base, 'outside');
  mkdirSync(join(shared, 'cache', 'aa'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(shared, 'cache', 'aa', 'entry-d'), 'cached');
  writeFileSync(join(shared, 'cache', 'README'), 'readme');
  return { base, shared, outside, mine: join(base, 'mine') };
}

test('linkCache links the shared entries into real folders the build user owns', async () => {
  const t = setup();
  try {
    await linkCache(t.shared, t.mine);
    assert.equal(readFileSync(join(t.mine, 'aa', 'entry-d'), 'utf8'), 'cached');
    assert.equal(statSync(join(t.mine, 'aa')).uid, buildUser().uid);
    assert.equal(statSync(join(t.mine, 'aa', 'entry-d')).uid, 0, 'the files stay root\'s');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('a folder the build replaced by a symlink is refused, and what it points to is not chowned', async () => {
  const t = setup();
  try {
    mkdirSync(t.mine);
    symlinkSync(t.outside, join(t.mine, 'aa'));
    await assert.rejects(linkCache(t.shared, t.mine), (e: Error & { code: string }) => e.code === 'UNIK_ERR_GO_CACHE_TAMPERED');
    assert.equal(statSync(t.outside).uid, 0);
    assert.equal(existsSync(join(t.outside, 'entry-d')), false);
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('a dangling symlink the build left at an entry is never written through', async () => {
  const t = setup();
  try {
    mkdirSync(join(t.mine, 'aa'), { recursive: true });
    const target = join(t.outside, 'planted');
    symlinkSync(target, join(t.mine, 'aa', 'entry-d'));
    symlinkSync(join(t.outside, 'also'), join(t.mine, 'README'));
    await linkCache(t.shared, t.mine);
    assert.equal(existsSync(target), false);
    assert.equal(existsSync(join(t.outside, 'also')), false);
    assert.ok(lstatSync(join(t.mine, 'aa', 'entry-d')).isSymbolicLink(), 'left alone: the build\'s own cache, its own problem');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
  }
});

test('on another file system the entries are copied (never through a link)', { skip: !existsSync('/dev/shm') && 'needs /dev/shm, a second file system to copy across' }, async () => {
  const t = setup();
  const shm = mkdtempSync('/dev/shm/unik-gocache-');
  try {
    if (statSync(shm).dev === statSync(t.base).dev) return; // same disk: nothing to show
    const mine = join(shm, 'mine');
    await linkCache(t.shared, mine);
    assert.equal(readFileSync(join(mine, 'aa', 'entry-d'), 'utf8'), 'cached');
    assert.equal(lstatSync(join(mine, 'aa', 'entry-d')).nlink, 1, 'a copy');
  } finally {
    rmSync(t.base, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  }
});
