// The read-only root disk (erofs) writer, the boot config's user and stop signal records, and
// unik.yaml's rootDisk, user and stopSignal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeErofs } from '../../src/base/linux/erofs.js';
import { writeInitramfs } from '../../src/base/linux/rootfs.js';
import { encodeBootConfig, userRecord } from '../../src/base/linux/contract.js';
import { checkAppManifest } from '../../src/compilers/app-manifest.js';
import { canonicalSignal, signalNumber } from '../../src/model/signals.js';
import { qemuArgs, rootDiskArgs } from '../../src/providers/qemu/args.js';
import type { RootEntry } from '../../src/compilers/types.js';
import { isUnikError } from '../../src/model/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'unik-rootdisk-'));
const asRoot = process.getuid?.() === 0;

/** Unpacks an erofs image with erofs-utils' own checker, owners and modes kept. */
function extract(image: string): string {
  const out = join(tmp(), 'x');
  execFileSync('fsck.erofs', [`--extract=${out}`, '--preserve', image], { stdio: 'pipe' });
  return out;
}

test('erofs root disk: files, data, dirs, symlinks, modes and owners read back by fsck.erofs; reproducible', async () => {
  const dir = tmp();
  const src = join(dir, 'app.bin');
  writeFileSync(src, Buffer.alloc(300_000, 7));
  const entries: RootEntry[] = [
    { kind: 'dir', path: '/srv/data', mode: 0o750, uid: 1000, gid: 1001 },
    { kind: 'file', path: '/srv/app', source: src, mode: 0o4755 },
    { kind: 'data', path: '/srv/data/conf', content: 'k=v\n', mode: 0o640, uid: 1000, gid: 1001 },
    { kind: 'symlink', path: '/usr/bin/app', target: '/srv/app' },
    { kind: 'symlink', path: '/srv/rel', target: '../etc/passwd', uid: 7, gid: 8 },
  ];
  const img = join(dir, 'root.erofs');
  const size = await writeErofs(img, entries, { stageDir: join(dir, 'stage'), allowedDirs: [dir] });
  assert.equal(size, statSync(img).size);
  assert.ok(!existsSync(join(dir, 'stage')), 'the staging tree is removed');
  const x = extract(img);
  assert.deepEqual(readFileSync(join(x, 'srv/app')), Buffer.alloc(300_000, 7));
  assert.equal(readFileSync(join(x, 'srv/data/conf'), 'utf8'), 'k=v\n');
  assert.equal(statSync(join(x, 'srv/data/conf')).mode & 0o7777, 0o640);
  assert.equal(statSync(join(x, 'srv/data')).mode & 0o7777, 0o750);
  assert.equal(readlinkSync(join(x, 'usr/bin/app')), '/srv/app');
  assert.equal(readlinkSync(join(x, 'srv/rel')), '../etc/passwd');
  // the mount points, /run and the default users are there
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run']) assert.ok(statSync(join(x, d)).isDirectory(), d);
  assert.equal(statSync(join(x, 'tmp')).mode & 0o7777, 0o1777);
  assert.match(readFileSync(join(x, 'etc/passwd'), 'utf8'), /^root:x:0:0:/);
  if (asRoot) {
    // fsck.erofs drops set-id bits when it extracts; the kernel's own reading of the disk keeps them
    const mnt = join(tmp(), 'm');
    mkdirSync(mnt);
    let mounted = false;
    try {
      execFileSync('mount', ['-o', 'loop,ro', '-t', 'erofs', img, mnt], { stdio: 'pipe' });
      mounted = true;
      assert.equal(statSync(join(mnt, 'srv/app')).mode & 0o7777, 0o4755, 'set-id bits survive the chown');
    } catch (e) {
      if (mounted) throw e;
    } finally {
      if (mounted) execFileSync('umount', [mnt]);
    }
    assert.deepEqual([statSync(join(x, 'srv/data')).uid, statSync(join(x, 'srv/data')).gid], [1000, 1001]);
    assert.deepEqual([statSync(join(x, 'srv/data/conf')).uid, statSync(join(x, 'srv/data/conf')).gid], [1000, 1001]);
    assert.deepEqual([lstatSync(join(x, 'srv/rel')).uid, lstatSync(join(x, 'srv/rel')).gid], [7, 8]);
    assert.equal(statSync(join(x, 'srv/app')).uid, 0);
  }
  // the same files make the same disk (fixed timestamps and UUID)
  const again = join(dir, 'again.erofs');
  await writeErofs(again, entries, { stageDir: join(dir, 'stage2'), allowedDirs: [dir] });
  assert.ok(readFileSync(img).equals(readFileSync(again)), 'two builds of the same root are byte for byte the same');
  // compressed: 300 KB of one byte is far smaller on the disk
  assert.ok(size < 100_000, `compressed (${size} bytes)`);
});

test('erofs root disk: hostile entries are refused and nothing is written outside the staging tree', async () => {
  const dir = tmp();
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  const allowed = join(dir, 'build');
  mkdirSync(allowed);
  writeFileSync(join(allowed, 'ok'), 'ok');
  writeFileSync(join(dir, 'secret'), 'secret');
  symlinkSync(join(dir, 'secret'), join(allowed, 'link-out'));
  const cases: [string, RootEntry[]][] = [
    ['dot-dot', [{ kind: 'data', path: '/a/../../x', content: 'x', mode: 0o644 }]],
    ['relative', [{ kind: 'data', path: 'x', content: 'x', mode: 0o644 }]],
    ['empty segment', [{ kind: 'data', path: '/a//x', content: 'x', mode: 0o644 }]],
    ['NUL', [{ kind: 'data', path: '/a\0b', content: 'x', mode: 0o644 }]],
    ['the root', [{ kind: 'dir', path: '/', mode: 0o755 }]],
    // an earlier entry's symlink must not carry a later entry out of the tree
    ['through a symlink', [{ kind: 'symlink', path: '/evil', target: outside }, { kind: 'data', path: '/evil/planted', content: 'x', mode: 0o644 }]],
    ['through a relative symlink', [{ kind: 'symlink', path: '/up', target: '../../../..' }, { kind: 'data', path: '/up/planted', content: 'x', mode: 0o644 }]],
    ['a source outside', [{ kind: 'file', path: '/x', source: join(dir, 'secret'), mode: 0o644 }]],
    ['a source linking outside', [{ kind: 'file', path: '/x', source: join(allowed, 'link-out'), mode: 0o644 }]],
    ['a device as source', [{ kind: 'file', path: '/x', source: '/dev/zero', mode: 0o644 }]],
    ['a negative owner', [{ kind: 'data', path: '/x', content: 'x', mode: 0o644, uid: -1 }]],
    ['a huge owner', [{ kind: 'data', path: '/x', content: 'x', mode: 0o644, gid: 2 ** 32 }]],
    ['a file over a directory', [{ kind: 'dir', path: '/d', mode: 0o755 }, { kind: 'data', path: '/d', content: 'x', mode: 0o644 }]],
  ];
  for (const [name, entries] of cases) {
    const img = join(dir, `${name.replace(/\W/g, '_')}.erofs`);
    await assert.rejects(writeErofs(img, entries, { stageDir: join(dir, 'stage'), allowedDirs: [allowed] }), (e: unknown) => isUnikError(e), name);
    assert.ok(!existsSync(img), `${name}: no disk written`);
    assert.ok(!existsSync(join(dir, 'stage')), `${name}: staging tree removed`);
  }
  assert.deepEqual(readdirSync(outside), [], 'nothing planted outside');
  assert.ok(!existsSync(join(dir, 'planted')) && !existsSync('/planted'));
  assert.equal(readFileSync(join(dir, 'secret'), 'utf8'), 'secret');
  // the initramfs writer refuses the same paths
  await assert.rejects(writeInitramfs(join(dir, 'r.cpio'), join(allowed, 'ok'), [{ kind: 'data', path: '/a/../x', content: 'x', mode: 0o644 }], [allowed]), /bad path in image root/);
});

test('a root-disk image initramfs holds only the init, the mount points and /unik/root', async () => {
  const dir = tmp();
  const init = join(dir, 'init');
  writeFileSync(init, 'init');
  await writeInitramfs(join(dir, 'r.cpio'), init, [], [dir], 'erofs');
  const listing = execFileSync('cpio', ['-it', '--quiet', '-F', join(dir, 'r.cpio')], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(listing, ['dev', 'dev/console', 'etc', 'init', 'proc', 'sys', 'tmp', 'unik', 'unik/root']);
  const out = join(dir, 'x');
  mkdirSync(out);
  execFileSync('cpio', ['-id', '--quiet', '-F', join(dir, 'r.cpio')], { cwd: out });
  assert.equal(readFileSync(join(out, 'unik/root'), 'utf8'), 'erofs\n');
});

test('an initramfs keeps the owners entries give', async () => {
  const dir = tmp();
  const init = join(dir, 'init');
  writeFileSync(init, 'init');
  await writeInitramfs(join(dir, 'r.cpio'), init, [{ kind: 'data', path: '/srv/x', content: 'x', mode: 0o600, uid: 70, gid: 71 }], [dir]);
  const listing = execFileSync('cpio', ['-itvn', '--quiet', '-F', join(dir, 'r.cpio')], { encoding: 'utf8' });
  assert.match(listing, /-rw------- +1 70 +71 +1 .* srv\/x/);
});

test('boot config: user and stopsignal records', () => {
  const base = { argv: ['/app'], env: {}, cwd: '/', hostname: 'h', time: 1 };
  const recs = encodeBootConfig({ ...base, user: { uid: 999, gid: 998, groups: [5, 6] }, stopSignal: 3 }).toString().split('\0');
  assert.ok(recs.includes('user=999:998:5,6'));
  assert.ok(recs.includes('stopsignal=3'));
  assert.ok(encodeBootConfig({ ...base, user: { uid: 0, gid: 0, groups: [] } }).toString().split('\0').includes('user=0:0'));
  assert.ok(!encodeBootConfig(base).toString().includes('user='), 'no user: none sent');
  assert.throws(() => userRecord({ uid: -1, gid: 0, groups: [] }));
  assert.throws(() => userRecord({ uid: 1.5, gid: 0, groups: [] }));
  assert.throws(() => userRecord({ uid: 1, gid: 2 ** 32, groups: [] }));
  assert.throws(() => userRecord({ uid: 1, gid: 1, groups: Array(65).fill(1) }));
  assert.throws(() => encodeBootConfig({ ...base, stopSignal: 0 }));
  assert.throws(() => encodeBootConfig({ ...base, stopSignal: 65 }));
});

test('signals: names, numbers and real-time signals; anything else refused', () => {
  assert.equal(canonicalSignal('SIGQUIT'), 'SIGQUIT');
  assert.equal(canonicalSignal('quit'), 'SIGQUIT');
  assert.equal(canonicalSignal('3'), 'SIGQUIT');
  assert.equal(canonicalSignal('SIGRTMIN+3'), 'SIGRTMIN+3');
  assert.equal(signalNumber('SIGRTMIN+3'), 37);
  assert.equal(signalNumber('SIGWINCH'), 28);
  assert.equal(signalNumber('SIGTERM'), 15);
  for (const bad of ['', 'SIGFOO', '0', '65', 'SIGRTMIN+31', 'SIGRTMAX+1', 'TERM; rm -rf /', 'x'.repeat(100)]) assert.equal(canonicalSignal(bad), undefined, bad);
  assert.throws(() => signalNumber('nope'));
});

test('unik.yaml rootDisk, user and stopSignal: parsed, and hostile values refused', () => {
  assert.deepEqual(checkAppManifest({ rootDisk: true, user: '1000:1000:27,100', stopSignal: 'QUIT' }), { rootDisk: true, user: { uid: 1000, gid: 1000, groups: [27, 100] }, stopSignal: 'SIGQUIT' });
  assert.deepEqual(checkAppManifest({ user: { uid: 5, gid: 6 } }).user, { uid: 5, gid: 6, groups: [] });
  assert.deepEqual(checkAppManifest({ stopSignal: 10 }).stopSignal, 'SIGUSR1');
  const refused = [
    { rootDisk: 'yes' },
    { user: 'postgres' }, // names need the image's passwd: not unik.yaml's
    { user: '1000' },
    { user: '-1:0' },
    { user: '4294967295:0' },
    { user: '1:1:' },
    { user: '1:1:a' },
    { user: '1:1:2:3' },
    { user: `1:1:${Array(65).fill(1).join(',')}` },
    { user: { uid: 1, gid: 1, shell: '/bin/sh' } },
    { user: { uid: 1.5, gid: 1 } },
    { user: ['1', '1'] },
    { stopSignal: 'SIGNOPE' },
    { stopSignal: { name: 'TERM' } },
    { stopSignal: 99 },
  ];
  for (const doc of refused) assert.throws(() => checkAppManifest(doc), (e: unknown) => isUnikError(e) && /unik\.yaml/.test((e as Error).message), JSON.stringify(doc));
});

test('qemu: the root disk is attached read-only, first, with serial unik-root', () => {
  assert.deepEqual(rootDiskArgs(undefined), []);
  const argv = qemuArgs({
    arch: 'amd64', accel: 'tcg', memoryMb: 64, kernel: '/k', initrd: '/i', name: 'n', ports: [], controlSocket: '/c',
    disks: [...rootDiskArgs('/img/root.erofs'), { file: '/vol', serial: 'abc' }],
    confinement: { dropArgs: [], summary: '' } as never,
  });
  const drives = argv.filter((_, n) => argv[n - 1] === '-drive');
  const devices = argv.filter((a, n) => argv[n - 1] === '-device' && a.startsWith('virtio-blk'));
  assert.match(drives[0]!, /^file=\/img\/root\.erofs,format=raw,if=none,id=disk0,readonly=on$/);
  assert.match(drives[1]!, /id=disk1,cache=writeback/);
  assert.equal(devices[0], 'virtio-blk-device,drive=disk0,serial=unik-root');
});

test('a pulled manifest keeps its user and stop signal, checked; one naming a root disk is refused', async () => {
  const { checkPulledManifest } = await import('../../src/core/manifest-check.js');
  const { checkManifest } = await import('../../src/runtime/manifest-check.js');
  const facts = { arch: 'amd64' as const, id: 'a'.repeat(64), name: 'pulled', source: '127.0.0.1:5000/x:v1', sourceDigest: `sha256:${'b'.repeat(64)}`, kernelBytes: 1000, rootBytes: 2000 };
  const good = {
    schemaVersion: 1, id: 'x', name: 'x', created: '2024-05-01T10:00:00.000Z', arch: 'x86_64', base: 'linux', language: 'c', compiler: 'linux-c-qemu', provider: 'qemu',
    kernel: { file: 'kernel', configHash: 'd0a939b09d0b8113', fragments: ['base', 'net'], sizeBytes: 1000 },
    root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: 2000 },
    argv: ['/app'], cwd: '/', env: {}, mountPoints: [], defaultMemoryMb: 64,
  };
  const check = (extra: object) => checkPulledManifest(JSON.stringify({ ...good, ...extra }), facts);
  const m = check({ user: { uid: 70, gid: 71, groups: [5] }, stopSignal: 'SIGQUIT' });
  assert.deepEqual(m.user, { uid: 70, gid: 71, groups: [5] });
  assert.equal(m.stopSignal, 'SIGQUIT');
  assert.equal(check({}).user, undefined);
  for (const bad of [{ user: '0:0' }, { user: { uid: -1, gid: 0 } }, { user: { uid: 1, gid: 1, groups: 'wheel' } }, { stopSignal: 'SIGNOPE' }, { stopSignal: 3 }, { rootDisk: { file: 'root.erofs', fsType: 'erofs', sizeBytes: 1 } }, { rootDisk: { file: '../../etc/shadow', fsType: 'erofs', sizeBytes: 1 } }])
    assert.throws(() => check(bad), Error, JSON.stringify(bad));
  // unik-runc's own check: the same refusals
  const runc = { argv: ['/app'], arch: 'x86_64', kernel: { sizeBytes: 1 }, root: { sizeBytes: 1 } };
  assert.doesNotThrow(() => checkManifest({ ...runc, user: { uid: 1, gid: 1, groups: [] }, stopSignal: 'SIGTERM' }));
  for (const bad of [{ rootDisk: { file: 'root.erofs' } }, { user: '1:1' }, { stopSignal: 'SIGNOPE' }]) assert.throws(() => checkManifest({ ...runc, ...bad }), Error, JSON.stringify(bad));
});
