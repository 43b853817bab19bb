// Uploads are unpacked by root: owners in the archive are ignored and no setuid/setgid/sticky bit survives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { unpack } from '../../src/core/tarball.js';

test('unpacked files are the daemon\'s, without setuid, setgid or sticky bits', async () => {
  const base = mkdtempSync(join(tmpdir(), 'unik-tarball-'));
  try {
    const src = join(base, 'src');
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(join(src, 'suid'), '#!/bin/sh\nid\n');
    writeFileSync(join(src, 'other'), 'x');
    const file = join(base, 'up.tar.gz');
    // the sources themselves (we are root), as node-tar records them
    chmodSync(join(src, 'suid'), 0o4755);
    chownSync(join(src, 'other'), 1234, 1234);
    chmodSync(join(src, 'other'), 0o2755);
    chownSync(join(src, 'dir'), 1234, 1234);
    chmodSync(join(src, 'dir'), 0o1777);
    await tar.create({ gzip: true, file, cwd: src }, ['suid', 'other', 'dir']);
    // the archive really says so
    const listed: Record<string, { uid?: number; mode?: number }> = {};
    await tar.list({ file, onReadEntry: (e) => (listed[e.path.replace(/\/$/, '')] = { uid: e.uid, mode: e.mode }) });
    assert.deepEqual(listed.suid, { uid: 0, mode: 0o4755 });
    assert.deepEqual(listed.other, { uid: 1234, mode: 0o2755 });
    assert.equal(listed.dir?.mode, 0o1777);

    const dest = join(base, 'dest');
    await unpack(file, dest);
    for (const name of ['suid', 'other', 'dir']) {
      const st = lstatSync(join(dest, name));
      assert.equal(st.mode & 0o7000, 0, `${name}: mode ${st.mode.toString(8)}`);
      assert.equal(st.uid, process.getuid!(), `${name}: uid ${st.uid}`);
      assert.equal(st.gid, process.getgid!(), `${name}: gid ${st.gid}`);
    }
    assert.equal(lstatSync(join(dest, 'suid')).mode & 0o777, 0o755);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
