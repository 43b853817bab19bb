// The libvirt provider's parts that need no libvirtd: the domain definition (escaped, checked
// with libvirt's own schema validator where it is installed), what counts as a remote URI, and
// the control line's refusal of anything but a pty. The lifecycle runs against a real libvirtd
// in test/integration/libvirt.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskDev, domainXml, type DomainSpec } from '../../src/providers/libvirt/domain.js';
import { isRemoteUri, xml } from '../../src/providers/libvirt/virsh.js';
import { sendLine } from '../../src/providers/libvirt/pty.js';

const spec: DomainSpec = {
  name: 'unik-0123abcd-0123456789ab',
  uuid: '01234567-89ab-cdef-0123-456789abcdef',
  title: 'web',
  description: 'unik instance web',
  accel: 'tcg',
  memoryMb: 64,
  kernel: '/var/lib/libvirt/images/unik/k',
  initrd: '/var/lib/libvirt/images/unik/i',
  cmdline: 'console=ttyS0 panic=-1',
  consoleLog: '/var/lib/libvirt/images/unik/c.log',
  eventsLog: '/var/lib/libvirt/images/unik/e.log',
  bridge: { bridge: 'unikbr01234567', tap: 'ukt0123456789ab', mac: '52:54:00:12:34:56' },
  disks: [{ file: "/home/u/vol'<x>.img", serial: 'abc' }],
};

test('a domain is a PC booting the kernel directly, on the bridge, with its disks by serial', () => {
  const x = domainXml(spec);
  assert.match(x, /<domain type='qemu'>/);
  assert.match(x, /machine='pc'>hvm</);
  assert.match(x, /<source bridge='unikbr01234567'\/>\s*<target dev='ukt0123456789ab'\/>\s*<mac address='52:54:00:12:34:56'\/>/);
  assert.match(x, /<target dev='vdb' bus='virtio'\/>\s*<serial>abc<\/serial>/);
  assert.match(x, /<on_reboot>destroy<\/on_reboot>/);
  // the control line's log starts afresh at each boot; the console's is kept
  assert.match(x, /e\.log' append='off'/);
  assert.match(x, /c\.log' append='on'/);
  assert.match(domainXml({ ...spec, accel: 'kvm' }), /<domain type='kvm'>[\s\S]*host-passthrough/);
  assert.match(domainXml({ ...spec, bridge: undefined }), /<interface type='user'>/);
});

test('every value is escaped: a quote or tag in a path or title cannot add an element', () => {
  const x = domainXml({ ...spec, title: `a'/><qemu:commandline>`, cmdline: `x</cmdline><evil/>` });
  assert.ok(!x.includes('<qemu:commandline>'));
  assert.ok(!x.includes('<evil/>'));
  assert.match(x, /vol&apos;&lt;x&gt;\.img/);
  assert.equal(xml(`<&>'"`), '&lt;&amp;&gt;&apos;&quot;');
  const dir = mkdtempSync(join(tmpdir(), 'unik-lvx-'));
  try {
    // libvirt's own schema check (libvirt-clients, with xmllint): the definitions are valid ones
    for (const [n, d] of [['hostile', x], ['plain', domainXml(spec)], ['user', domainXml({ ...spec, bridge: undefined, disks: [], initrd: undefined })]] as const) {
      writeFileSync(join(dir, `${n}.xml`), d);
      execFileSync('virt-xml-validate', [join(dir, `${n}.xml`), 'domain'], { stdio: 'pipe' });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a URI with a host part is remote; qemu:///system and the local socket are not', () => {
  assert.equal(isRemoteUri('qemu:///system'), false);
  assert.equal(isRemoteUri('qemu+unix:///system?socket=/run/x'), false);
  assert.equal(isRemoteUri('qemu://localhost/system'), false);
  assert.equal(isRemoteUri('qemu+ssh://root@host.example/system'), true);
  assert.equal(isRemoteUri('qemu+tcp://10.0.0.2:16509/system'), true);
});

test('the control line is written only to a pty: a path elsewhere is refused before it is opened', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-lvp-'));
  try {
    const f = join(dir, 'victim');
    writeFileSync(f, 'untouched');
    for (const p of [f, '/dev/pts/../../etc/passwd', '/dev/pts/1/../x', '/dev/ptmx'])
      await assert.rejects(sendLine(p, 'stop\n'), /not a pty/);
    assert.equal(execFileSync('cat', [f], { encoding: 'utf8' }), 'untouched');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio disks are named vdb … vdz, vdaa …: any number of volumes makes a valid definition', () => {
  assert.deepEqual([1, 2, 25, 26, 27, 52, 53].map(diskDev), ['vdb', 'vdc', 'vdz', 'vdaa', 'vdab', 'vdba', 'vdbb']);
  const disks = Array.from({ length: 30 }, (_, i) => ({ file: `/v/${i}.img`, serial: `s${i}` }));
  const names = [...domainXml({ ...spec, disks }).matchAll(/<target dev='(vd[a-z]+)' bus='virtio'\/>/g)].map((m) => m[1]);
  assert.equal(new Set(names).size, 30);
  const dir = mkdtempSync(join(tmpdir(), 'unik-lvd-'));
  try {
    writeFileSync(join(dir, 'd.xml'), domainXml({ ...spec, disks }));
    execFileSync('virt-xml-validate', [join(dir, 'd.xml'), 'domain'], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
