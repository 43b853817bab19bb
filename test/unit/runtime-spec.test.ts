import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstNameserver, memoryMb, netPlan, planGuest, SpecError, type OciSpec } from '../../src/runtime/spec.js';
import { checkInitramfs, checkKernel, isUnikRootfs, loadBundleImage, runnableArches } from '../../src/runtime/image.js';
import { hostArch } from '../../src/model/arch.js';
import { CpioWriter } from '../../src/base/linux/cpio.js';
import { parseArgs } from '../../src/runtime/args.js';

const image = { argv: ['/app/web', '--baked'], env: { GREETING: 'hi', PORT: '8080' }, cwd: '/app', defaultMemoryMb: 96 };

test('process.args replace the image argv (containerd puts Entrypoint+Cmd there); empty args keep the image\'s', () => {
  assert.deepEqual(planGuest({ process: { args: ['/app/web', 'x'] } }, image, 'id').argv, ['/app/web', 'x']);
  assert.deepEqual(planGuest({ process: { args: [] } }, image, 'id').argv, ['/app/web', '--baked']);
  assert.deepEqual(planGuest({}, image, 'id').argv, ['/app/web', '--baked']);
  assert.throws(() => planGuest({ process: { args: [] } }, { ...image, argv: [] }, 'id'), SpecError);
});

test('env merges over the image env; cwd and hostname from the spec, with defaults', () => {
  const p = planGuest({ process: { env: ['PORT=9090', 'PATH=/bin', 'EMPTY=', 'junk'], cwd: '/srv' }, hostname: 'pod-a' }, image, '0123456789abcdef');
  assert.deepEqual(p.env, { GREETING: 'hi', PORT: '9090', PATH: '/bin', EMPTY: '' });
  assert.equal(p.cwd, '/srv');
  assert.equal(p.hostname, 'pod-a');
  const d = planGuest({}, image, '0123456789abcdef');
  assert.equal(d.cwd, '/app');
  assert.equal(d.hostname, '0123456789ab');
});

test('memory: the limit is the VM RAM; the image default otherwise; too small is an error', () => {
  assert.equal(memoryMb({ linux: { resources: { memory: { limit: 256 * 1024 * 1024 } } } }, 96), 256);
  assert.equal(memoryMb({}, 96), 96);
  assert.equal(memoryMb({}, undefined), 128);
  assert.equal(memoryMb({ linux: { resources: { memory: { limit: -1 } } } }, 64), 64, 'unlimited');
  assert.throws(() => memoryMb({ linux: { resources: { memory: { limit: 16 << 20 } } } }), /too small for a unikernel VM/);
});

test('a terminal is refused', () => {
  assert.throws(() => planGuest({ process: { terminal: true } }, image, 'id'), /terminal .* not supported/);
});

test('mounts: standard ones dropped silently, volumes and secrets ignored with a warning; resolv.conf feeds DNS', () => {
  const spec: OciSpec = {
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup' },
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/x/hosts' },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/var/lib/x/resolv.conf' },
      { destination: '/var/run/secrets/kubernetes.io/serviceaccount', type: 'bind', source: '/var/lib/kubelet/x' },
      { destination: '/data', type: 'bind', source: '/srv/data' },
    ],
  };
  const p = planGuest(spec, image, 'id');
  assert.equal(p.resolvConf, '/var/lib/x/resolv.conf');
  assert.equal(p.warnings.length, 2);
  assert.match(p.warnings[0]!, /secrets .* ignored/);
  assert.match(p.warnings[1]!, /mount \/srv\/data on \/data is ignored: volumes are not supported/);
  assert.equal(firstNameserver('search x\nnameserver 10.96.0.10\nnameserver 8.8.8.8\n'), '10.96.0.10');
  assert.equal(firstNameserver('options ndots:5\n'), undefined);
});

test('network: a namespace path is joined; a fresh namespace or none means user-mode networking', () => {
  assert.deepEqual(netPlan({ linux: { namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/cni-1' }] } }), { kind: 'netns', path: '/var/run/netns/cni-1' });
  assert.deepEqual(netPlan({ linux: { namespaces: [{ type: 'network' }] } }), { kind: 'user' });
  assert.deepEqual(netPlan({}), { kind: 'user' });
});

async function fakeImage(): Promise<string> {
  const rootfs = mkdtempSync(join(tmpdir(), 'unik-rt-unit-'));
  mkdirSync(join(rootfs, 'unik'));
  // a minimal bzImage: setup_sects=1, syssize=2 paragraphs → needs (1+1)*512+32 bytes
  const k = Buffer.alloc(2 * 512 + 32);
  k[0x1f1] = 1;
  k.writeUInt32LE(2, 0x1f4);
  k.write('HdrS', 0x202, 'latin1');
  writeFileSync(join(rootfs, 'unik', 'kernel'), k);
  const w = await CpioWriter.create(join(rootfs, 'unik', 'root.cpio'));
  await w.file('hello', Buffer.from('hi'));
  await w.finish();
  const m = { arch: 'x86_64', argv: ['/hello'], env: {}, cwd: '/', kernel: { sizeBytes: k.length }, root: { sizeBytes: readFileSync(join(rootfs, 'unik', 'root.cpio')).length } };
  writeFileSync(join(rootfs, 'unik', 'manifest.json'), JSON.stringify(m));
  return rootfs;
}

test('image checks: a good image loads; wrong arch, truncation and garbage are named', async () => {
  const rootfs = await fakeImage();
  assert.ok(isUnikRootfs(rootfs));
  assert.ok(!isUnikRootfs(tmpdir() + '/nonexistent'));
  if (process.arch === 'x64') assert.deepEqual(loadBundleImage(rootfs).manifest.argv, ['/hello']);
  const m = JSON.parse(readFileSync(join(rootfs, 'unik', 'manifest.json'), 'utf8'));
  writeFileSync(join(rootfs, 'unik', 'manifest.json'), JSON.stringify({ ...m, arch: 'arm64' }));
  assert.throws(() => loadBundleImage(rootfs), /built for arm64/);
  assert.throws(() => loadBundleImage(rootfs, ['amd64']), /UNIK_RUNC_EMULATE=arm64 in containerd's environment/);
  // a node that emulates arm64 takes the image past the architecture check: its kernel is then
  // checked as an arm64 one (this fake amd64 kernel is not)
  assert.throws(() => loadBundleImage(rootfs, ['amd64', 'arm64']), /kernel \/unik\/kernel .*arm64|not .*arm64|Image/i);
  assert.deepEqual(runnableArches({ UNIK_RUNC_EMULATE: ' arm64, aarch64 ' }).sort(), [...new Set([hostArch()!, 'arm64'])].sort());
  assert.deepEqual(runnableArches({}), [hostArch()]);
  assert.throws(() => runnableArches({ UNIK_RUNC_EMULATE: 'riscv64' }), /UNIK_RUNC_EMULATE="riscv64" names no architecture/);

  const kernel = join(rootfs, 'unik', 'kernel');
  truncateSync(kernel, 600);
  assert.throws(() => checkKernel(kernel), /truncated \(600 bytes, its header needs 1056\)/);
  assert.throws(() => checkKernel(kernel, 1056), /is 600 bytes, its manifest says 1056/);
  writeFileSync(kernel, Buffer.alloc(2048));
  assert.throws(() => checkKernel(kernel), /not a Linux bzImage/);

  const cpio = join(rootfs, 'unik', 'root.cpio');
  const size = readFileSync(cpio).length;
  truncateSync(cpio, size - 200);
  assert.throws(() => checkInitramfs(cpio), /truncated \(no cpio trailer\)/);
  writeFileSync(cpio, 'not a cpio at all');
  assert.throws(() => checkInitramfs(cpio), /not a cpio \(newc\) archive/);
  rmSync(rootfs, { recursive: true, force: true });
});

test('argv parsing keeps unknown verbs for runc', () => {
  assert.equal(parseArgs(['--root', '/r', 'list', '--format', 'json']).verb, 'list');
});

test('qemuArgs: a tap device replaces user-mode networking, with the pod interface MAC', async () => {
  const { qemuArgs } = await import('../../src/providers/qemu/args.js');
  const base = { arch: 'amd64' as const, accel: 'tcg' as const, memoryMb: 64, kernel: 'k', initrd: 'i', name: 'unik-x', ports: [], consoleLog: 'c', controlSocket: 's', controlLog: 'l', disks: [], confinement: { sandbox: '', dropArgs: [], summary: '' } };
  const user = qemuArgs(base);
  assert.ok(user.some((a) => a.startsWith('user,id=net0')));
  const tap = qemuArgs({ ...base, tap: { ifname: 'unik0', mac: '2a:68:0f:c7:18:f3' } });
  assert.ok(tap.includes('tap,id=net0,ifname=unik0,script=no,downscript=no'));
  assert.ok(tap.includes('virtio-net-device,netdev=net0,mac=2a:68:0f:c7:18:f3'));
  assert.ok(!tap.some((a) => a.startsWith('user,')));
});
