// The path checks every upload and unik.yaml path goes through: canonicalise, then compare segments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containedIn, hostSystemFile, insideDir, readFileInside, whereIs } from '../../src/util/safe-path.js';

function tree() {
  const base = mkdtempSync(join(tmpdir(), 'unik-safe-'));
  const root = join(base, 'app');
  const secret = join(base, 'secret');
  const canary = `canary-${Math.random().toString(36).slice(2)}`;
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(join(base, 'app-evil'));
  writeFileSync(join(root, 'sub', 'ok.txt'), 'ok');
  writeFileSync(secret, canary);
  writeFileSync(join(base, 'app-evil', 'x'), canary);
  symlinkSync('sub/ok.txt', join(root, 'link-in'));
  symlinkSync(secret, join(root, 'link-out'));
  symlinkSync('../secret', join(root, 'rel-out'));
  symlinkSync('..', join(root, 'up'));
  symlinkSync('link-out', join(root, 'chain-out'));
  symlinkSync('nowhere', join(root, 'dangling'));
  return { base, root, secret, canary };
}

test('containedIn compares whole path segments, never a string prefix', () => {
  assert.equal(containedIn('/a/b', '/a/b'), true);
  assert.equal(containedIn('/a/b', '/a/b/c'), true);
  assert.equal(containedIn('/a/b', '/a/bc'), false);
  assert.equal(containedIn('/a/b', '/a'), false);
  assert.equal(containedIn('/a/b', '/a/b/../c'), false);
  assert.equal(containedIn('/a/b', '/a/b/..c'), true);
  assert.equal(containedIn('/usr', '/usr/../etc/shadow'), false);
});

test('insideDir follows links and refuses whatever really lies outside', async () => {
  const t = tree();
  assert.equal(await insideDir(t.root, 'sub/ok.txt'), join(t.root, 'sub', 'ok.txt'));
  assert.equal(await insideDir(t.root, 'link-in'), join(t.root, 'sub', 'ok.txt'));
  for (const p of ['link-out', 'rel-out', 'chain-out', 'up/secret', '../secret', t.secret, '../app-evil/x', 'up', 'dangling', 'missing'])
    assert.equal(await insideDir(t.root, p), undefined, p);
});

test('whereIs tells missing from leading out', async () => {
  const t = tree();
  assert.equal(await whereIs(t.root, 'sub/ok.txt'), 'inside');
  assert.equal(await whereIs(t.root, 'missing'), 'missing');
  assert.equal(await whereIs(t.root, 'dangling'), 'missing');
  assert.equal(await whereIs(t.root, 'link-out'), 'outside');
  assert.equal(await whereIs(t.root, 'up/secret'), 'outside');
  assert.equal(await whereIs(t.root, '../not-there'), 'outside');
  assert.equal(await whereIs(t.root, '/etc/passwd'), 'outside');
});

test('hostSystemFile: regular files under /usr /lib /bin /sbin /opt, judged after realpath', async () => {
  const t = tree();
  assert.equal(await hostSystemFile('/usr/bin/env'), '/usr/bin/env');
  assert.ok(await hostSystemFile('/bin/sh')); // merged /usr: /bin → /usr/bin
  assert.equal(await hostSystemFile('/usr/../etc/passwd'), undefined);
  assert.equal(await hostSystemFile('/usr/bin/../../etc/passwd'), undefined);
  assert.equal(await hostSystemFile('/etc/passwd'), undefined);
  assert.equal(await hostSystemFile('/usr/bin'), undefined, 'a directory is not a file');
  assert.equal(await hostSystemFile('usr/bin/env'), undefined, 'relative paths are refused');
  assert.equal(await hostSystemFile(t.secret), undefined);
  // a link outside the system dirs that leads into them is judged by where it leads
  symlinkSync('/usr/bin/env', join(t.base, 'to-env'));
  assert.equal(await hostSystemFile(join(t.base, 'to-env')), '/usr/bin/env');
});

test('hostSystemFile refuses a file only root may read (a key under /opt), naming it', async () => {
  mkdirSync('/opt', { recursive: true });
  const dir = mkdtempSync('/opt/unik-safe-');
  try {
    const key = join(dir, 'private.key');
    writeFileSync(key, 'secret', { mode: 0o600 });
    chmodSync(key, 0o600);
    await assert.rejects(hostSystemFile(key), (e: Error & { code: string }) => {
      assert.equal(e.code, 'UNIK_ERR_HOST_FILE_NOT_READABLE');
      assert.ok(e.message.includes(key), e.message);
      return true;
    });
    symlinkSync(key, join(dir, 'link'));
    await assert.rejects(hostSystemFile(join(dir, 'link')), /not world-readable/, 'nor through a link');
    chmodSync(key, 0o644);
    assert.equal(await hostSystemFile(key), key);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readFileInside reads the app\'s own file, never one a link leads out to', async () => {
  const t = tree();
  assert.equal(await readFileInside(t.root, 'link-in'), 'ok');
  assert.equal(await readFileInside(t.root, 'missing'), undefined);
  for (const p of ['link-out', 'rel-out', 'up/secret']) {
    const e = await readFileInside(t.root, p).then(() => undefined, (x: Error & { code: string }) => x);
    assert.ok(e, `${p} must be refused`);
    assert.equal(e.code, 'UNIK_ERR_PATH_OUTSIDE_UPLOAD');
    assert.doesNotMatch(e.message, new RegExp(t.canary));
  }
});
