// The dashboard's two pieces of logic that run in the browser but need none of it: the tar
// writer that packs a picked folder (read back by GNU tar and by the daemon's own unpacker) and
// the console's text cleaner (escape sequences dropped, even when cut across chunks).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { unpack } from '../../src/core/tarball.js';
import { folderFiles, gzip, tarOf, ustarName, type PackFile } from '../../src/ui/tar.js';
import { ConsoleText } from '../../src/ui/terminal.js';

describe('the dashboard\'s tar writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-ui-tar-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(70)}.txt`; // 192 bytes: name + prefix
  const longer = `${'g'.repeat(120)}/${'h'.repeat(120)}/${'i'.repeat(110)}`; // no ustar split: pax
  const files: PackFile[] = [
    { path: 'go.mod', data: new Blob(['module example.com/x\n']), mtime: 1_700_000_000_000 },
    { path: 'cmd/app/main.go', data: new Blob(['package main\n']), mtime: 1_700_000_000_000 },
    { path: 'empty', data: new Blob([]), mtime: 0 },
    { path: 'block', data: new Blob(['x'.repeat(512)]), mtime: 0 },
    { path: 'block+1', data: new Blob(['y'.repeat(513)]), mtime: 0 },
    { path: 'naïve/ünïcode ☃.txt', data: new Blob(['snow']), mtime: 0 },
    { path: long, data: new Blob(['long']), mtime: 0 },
    { path: longer, data: new Blob(['longer']), mtime: 0 },
  ];

  test('ustar names: ≤100 bytes as is, then split at a slash into prefix and name, else none', () => {
    assert.deepEqual(ustarName('a/b'), { name: 'a/b', prefix: '' });
    const split = ustarName(long)!;
    assert.equal(`${split.prefix}/${split.name}`, long);
    assert.ok(split.name.length <= 100 && split.prefix.length <= 155);
    assert.equal(ustarName(longer), undefined);
  });

  test('GNU tar reads every entry back, folders first, with its size and bytes', async () => {
    const tgz = join(dir, 'app.tar.gz');
    writeFileSync(tgz, Buffer.from(await (await gzip(tarOf(files))).arrayBuffer()));
    const listed = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
    for (const f of files) assert.ok(listed.includes(f.path), `${f.path} in ${listed.join(', ')}`);
    assert.ok(listed.indexOf('cmd/') < listed.indexOf('cmd/app/') && listed.indexOf('cmd/app/') < listed.indexOf('cmd/app/main.go'));
    const out = join(dir, 'gnu');
    execFileSync('mkdir', ['-p', out]);
    execFileSync('tar', ['-xzf', tgz, '-C', out]);
    for (const f of files) assert.equal(readFileSync(join(out, f.path), 'utf8'), await f.data.text(), f.path);
    const verbose = execFileSync('tar', ['-tvzf', tgz], { encoding: 'utf8' });
    assert.match(verbose, /^-rw-r--r-- 0\/0 +21 2023-11-14 \S+ go\.mod$/m);
    assert.match(verbose, /^drwxr-xr-x 0\/0 +0 \S+ \S+ cmd\/$/m);
  });

  test('the daemon\'s unpacker (the one builds use) takes it whole', async () => {
    const tgz = join(dir, 'daemon.tar.gz');
    writeFileSync(tgz, Buffer.from(await (await gzip(tarOf(files))).arrayBuffer()));
    const out = join(dir, 'daemon');
    await unpack(tgz, out);
    for (const f of files) assert.equal(readFileSync(join(out, f.path), 'utf8'), await f.data.text(), f.path);
  });

  test('a picked folder: paths below it, without .git and node_modules/.cache, in order; odd paths refused', () => {
    const picked = (rel: string) => {
      const f = new File(['x'], rel.split('/').pop()!);
      Object.defineProperty(f, 'webkitRelativePath', { value: rel });
      return f;
    };
    const got = folderFiles([picked('app/main.go'), picked('app/.git/HEAD'), picked('app/node_modules/.cache/x'), picked('app/node_modules/m/index.js'), picked('app/go.mod')]);
    assert.deepEqual(got.map((f) => f.path), ['go.mod', 'main.go', 'node_modules/m/index.js']);
    assert.throws(() => tarOf([{ path: 'a/../b', data: new Blob([]), mtime: 0 }]), /not a plain relative path/);
    assert.throws(() => tarOf([{ path: '/etc/x', data: new Blob([]), mtime: 0 }]), /not a plain relative path/);
  });
});

describe('the console\'s text cleaner', () => {
  const run = (...chunks: string[]) => {
    const t = new ConsoleText();
    return chunks.map((c) => t.push(c)).join('') + t.end();
  };

  test('colours, titles, hyperlinks, screen clears and charset switches are dropped; HTML is left as text', () => {
    assert.equal(run('\x1b[1;31mred\x1b[0m <b>x</b>'), 'red <b>x</b>');
    assert.equal(run('\x1b]0;title\x07a\x1b]8;;http://evil.test/\x1b\\link\x1b]8;;\x1b\\b'), 'alinkb');
    assert.equal(run('\x1b[2J\x1b[H\x1b(Bok\x1bc'), 'ok');
    assert.equal(run('\x1bP1$r0m\x1b\\dcs'), 'dcs');
  });

  test('a sequence or a CR LF cut between chunks is still recognised', () => {
    assert.equal(run('a\x1b', '[3', '1mb\x1b]0;ti', 'tle\x07c'), 'abc');
    assert.equal(run('line\r', '\nnext\r\n'), 'line\nnext\n');
    assert.equal(run('over\rwrite'), 'over\nwrite');
  });

  test('other controls become visible; bidi overrides become U+FFFD; tabs and newlines stay', () => {
    assert.equal(run('bell\x07 nul\x00 bs\x08 del\x7f \x1b\n'), 'bell␇ nul␀ bs␈ del␡ ␛\n');
    assert.equal(run('\u202eevil\u2066'), '\ufffdevil\ufffd');
    assert.equal(run('a\tb\n'), 'a\tb\n');
  });

  test('an escape that never ends is shown, not held forever', () => {
    const t = new ConsoleText();
    const shown = t.push('\x1b]0;' + 'x'.repeat(600));
    assert.ok(shown.length > 500, 'past the held limit, the text shows');
    assert.equal(t.push('\x1b]0;short'), '', 'a short unfinished one waits');
    assert.equal(t.end(), '0;short', 'at the end it is shown (its ESC ] dropped)');
  });
});
