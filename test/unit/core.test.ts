import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { resolveRef, checkName } from '../../src/core/ids.js';
import { parsePort } from '../../src/core/ports.js';
import { checkPortsFree } from '../../src/providers/qemu/ports.js';
import { TCG_TB_MB, qemuArgs } from '../../src/providers/qemu/args.js';
import { kernelCmdline } from '../../src/base/linux/cmdline.js';
import { Store } from '../../src/store/db.js';
import { UnikError } from '../../src/model/errors.js';
import type { ImageRecord } from '../../src/model/types.js';

const kindOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as UnikError).kind;
  }
  return 'ok';
};

test('refs resolve by exact id, then exact name, then a unique id prefix; never by substring', () => {
  const all = [
    { id: 'abc123', name: 'web' },
    { id: 'abd456', name: 'abc' },
  ];
  assert.equal(resolveRef('instance', 'abc123', all).name, 'web');
  assert.equal(resolveRef('instance', 'abc', all).id, 'abd456', 'an exact name beats an id prefix');
  assert.equal(resolveRef('instance', 'abd', all).name, 'abc');
  assert.equal(kindOf(() => resolveRef('instance', 'ab', all)), 'NotFound', 'too short to be a prefix');
  assert.equal(kindOf(() => resolveRef('instance', 'abc1', [...all, { id: 'abc199', name: 'x' }])), 'Conflict');
  assert.equal(kindOf(() => resolveRef('instance', 'eb', all)), 'NotFound');
});

test('names: letters, digits, _ . -; nothing that could be a path or flag', () => {
  for (const ok of ['web', 'go-http', 'a.b_c', 'X1']) assert.equal(kindOf(() => checkName('image', ok)), 'ok');
  for (const bad of ['', '-x', '../x', 'a/b', 'a b', 'x'.repeat(129)]) assert.equal(kindOf(() => checkName('image', bad)), 'InvalidArgument');
});

test('port mappings parse like docker -p', () => {
  assert.deepEqual(parsePort('8080:80'), { hostIp: '127.0.0.1', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  assert.deepEqual(parsePort('0.0.0.0:53:53/udp'), { hostIp: '0.0.0.0', hostPort: 53, guestPort: 53, protocol: 'udp' });
  for (const bad of ['80', 'a:b', '70000:80', '0:80', '1:2:3:4']) assert.equal(kindOf(() => parsePort(bad)), 'InvalidArgument', bad);
});

test('a host port in use is refused up front with a conflict', async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await assert.rejects(checkPortsFree([parsePort(`${port}:8080`)]), (e: UnikError) => e.kind === 'Conflict' && /already in use/.test(e.message));
  srv.close();
  await checkPortsFree([parsePort(`${port}:8080`)]);
  await assert.rejects(checkPortsFree([parsePort(`${port}:1`), parsePort(`${port}:2`)]), /mapped twice/);
});

test('QEMU argv: microvm, forwards, control channel; TSC hint only under TCG', () => {
  const base = { arch: 'amd64' as const, memoryMb: 64, kernel: '/k', initrd: '/i', name: 'unik-web', consoleLog: '/c.log', controlSocket: '/s', controlLog: '/ctl.log', disks: [{ file: '/v/disk.img', serial: 'abcdef0123456789abcd' }], ports: [parsePort('18080:8080'), parsePort('0.0.0.0:53:53/udp')], confinement: { sandbox: '', dropArgs: [], summary: '' } };
  const tcg = qemuArgs({ ...base, accel: 'tcg', tscKhz: 2600000 });
  assert.ok(tcg.includes('microvm,acpi=off,x-option-roms=off'));
  assert.ok(tcg.includes('-no-reboot'));
  assert.ok(tcg.includes('user,id=net0,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=udp:0.0.0.0:53-:53'));
  assert.ok(tcg.some((a) => a.startsWith('socket,id=control,path=/s,server=on,wait=off,logfile=/ctl.log')));
  assert.match(kernelCmdline({ accel: 'tcg', tscKhz: 2600000 }), /tsc_early_khz=2600000/);
  assert.doesNotMatch(kernelCmdline({ accel: 'kvm', tscKhz: 2600000 }), /tsc_early_khz/);
  assert.ok(tcg.includes('file=/v/disk.img,format=raw,if=none,id=disk0,cache=writeback,discard=unmap'));
  assert.ok(tcg.includes('virtio-blk-device,drive=disk0,serial=abcdef0123456789abcd'));
  const kvm = qemuArgs({ ...base, accel: 'kvm' });
  assert.deepEqual(kvm.slice(kvm.indexOf('-cpu'), kvm.indexOf('-cpu') + 2), ['-cpu', 'host']);
  assert.ok(!tcg.includes('-incoming') && !tcg.includes('-qmp') && !tcg.includes('-object'));
});

test('QEMU argv for boot snapshots: a template writes its RAM file, a restore maps it privately and waits', () => {
  const base = { arch: 'amd64' as const, accel: 'tcg' as const, memoryMb: 48, kernel: '/k', initrd: '/i', name: 'unik-web', consoleLog: '/c.log', controlSocket: '/s', controlLog: '/ctl.log', disks: [], ports: [], qmpSocket: '/q.qmp', confinement: { sandbox: '', dropArgs: [], summary: '' } };
  const template = qemuArgs({ ...base, memoryFile: { path: '/snap/ram', shared: true }, waitForConfig: true });
  assert.ok(template.includes('memory-backend-file,id=ram,size=48M,mem-path=/snap/ram,share=on'));
  assert.ok(template.includes('memory-backend=ram'));
  assert.ok(template.includes('unix:/q.qmp,server=on,wait=off'));
  assert.match(template[template.indexOf('-append') + 1]!, /(^| )unik\.wait( |$)/);
  assert.ok(!template.includes('-incoming'));
  const restore = qemuArgs({ ...base, memoryFile: { path: '/snap/ram', shared: false }, incoming: true, waitForConfig: true });
  assert.ok(restore.includes('memory-backend-file,id=ram,size=48M,mem-path=/snap/ram,share=off'));
  assert.deepEqual(restore.slice(restore.indexOf('-incoming'), restore.indexOf('-incoming') + 2), ['-incoming', 'defer']);
  assert.doesNotMatch(kernelCmdline({ accel: 'tcg' }), /unik\.wait/);
});

test('QEMU argv for arm64: the virt machine, the PL011 console, the control line on a virtio console, no x86 options', () => {
  const base = { arch: 'arm64' as const, memoryMb: 64, kernel: '/k', initrd: '/i', name: 'unik-web', consoleLog: '/c.log', controlSocket: '/s', controlLog: '/ctl.log', disks: [{ file: '/v/disk.img', serial: 'abc' }], ports: [], confinement: { sandbox: '', dropArgs: [], summary: '' } };
  const tcg = qemuArgs({ ...base, accel: 'tcg', tscKhz: 2600000 });
  assert.deepEqual(tcg.slice(tcg.indexOf('-M'), tcg.indexOf('-M') + 6), ['-M', 'virt', '-accel', `tcg,tb-size=${TCG_TB_MB}`, '-cpu', 'cortex-a72']);
  // TCG's code buffer is sized for a unikernel, not QEMU's default for a whole OS
  if (!process.env.UNIK_TCG_TB_MB) assert.equal(TCG_TB_MB, 32);
  assert.ok(tcg.includes('virtconsole,chardev=control') && tcg.includes('virtio-serial-device'));
  assert.ok(!tcg.some((a) => a.startsWith('isa-serial') || a.includes('microvm')));
  const cmdline = tcg[tcg.indexOf('-append') + 1]!;
  assert.match(cmdline, /^console=ttyAMA0 /);
  assert.doesNotMatch(cmdline, /tsc_early_khz|noapictimer|reboot=t|8250/);
  assert.ok(tcg.includes('virtio-blk-device,drive=disk0,serial=abc'));
  const kvm = qemuArgs({ ...base, accel: 'kvm' });
  assert.deepEqual(kvm.slice(kvm.indexOf('-M'), kvm.indexOf('-M') + 6), ['-M', 'virt,gic-version=host', '-accel', 'kvm', '-cpu', 'host']);
});

test('the store migrates once, and a failed transaction leaves nothing behind', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'unik-store-')), 'state.db');
  const s = new Store(file);
  const img = (id: string, name: string): ImageRecord => ({ id, name, provider: 'qemu', sizeBytes: 1, created: new Date().toISOString(), manifest: { name } as never });
  s.insertImage(img('a', 'one'));
  assert.throws(() =>
    s.tx(() => {
      s.deleteImage('a');
      s.insertImage(img('b', 'two'));
      throw new Error('failpoint');
    }),
  );
  assert.deepEqual(s.listImages().map((i) => i.name), ['one']);
  assert.throws(() => s.insertImage(img('c', 'one')), /UNIQUE/);
  s.close();
  const again = new Store(file);
  assert.deepEqual(again.listImages().map((i) => i.id), ['a']);
  again.close();
});
