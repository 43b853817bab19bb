// unik export's parts that need no VM: the kernel each format gets, the OVF descriptor (escaped),
// the config drive (a real FAT image, read back with mtools). The disks are booted in
// test/integration/export.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportFragments } from '../../src/export/export.js';
import { ovfDescriptor } from '../../src/export/formats.js';
import { parseDriveVolume, writeConfigDrive } from '../../src/export/config-drive.js';
import type { ImageRecord } from '../../src/model/types.js';

const image = { name: 'web', manifest: { kernel: { fragments: ['base', 'net'] } } } as unknown as ImageRecord;

test('each format gets the image kernel plus PC machines, EFI and its platform devices; formats of one family share a kernel', () => {
  assert.deepEqual(exportFragments(image, 'raw'), ['base', 'net', 'block', 'fat', 'pc', 'efi']);
  assert.deepEqual(exportFragments(image, 'gce'), exportFragments(image, 'qcow2'));
  assert.deepEqual(exportFragments(image, 'ova'), ['base', 'net', 'block', 'fat', 'pc', 'efi', 'vmware', 'emulated', 'hyperv']);
  for (const f of ['vmdk', 'vhd', 'vhdx'] as const) assert.deepEqual(exportFragments(image, f), exportFragments(image, 'ova'));
});

test('the OVF descriptor escapes what it is given', () => {
  const x = ovfDescriptor('a<b>&"c', 'd.vmdk', 10, 20, 64);
  assert.match(x, /<Name>a&lt;b&gt;&amp;&quot;c<\/Name>/);
  assert.doesNotMatch(x, /<b>/);
  assert.match(x, /ovf:capacity="20"/);
  assert.match(x, /<rasd:VirtualQuantity>64<\/rasd:VirtualQuantity>/);
});

test('a config drive is a FAT disk labelled CIDATA holding /unik/config with only the records given', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-drive-'));
  try {
    const out = join(dir, 'drive.img');
    await writeConfigDrive(out, { env: { KEY: 'v=1' }, argv: ['/app', '-x'], net: { ip: '10.0.0.5/24', gateway: '10.0.0.1', dns: '10.0.0.1' } });
    assert.match(execFileSync('mlabel', ['-s', '-i', out, '::'], { encoding: 'utf8' }), /CIDATA/);
    const records = execFileSync('mtype', ['-i', out, '::/unik/config'], { encoding: 'latin1' }).split('\0').filter(Boolean);
    assert.deepEqual(records.filter((r) => !r.startsWith('time=')), ['arg=/app', 'arg=-x', 'env=KEY=v=1', 'net.if=eth0', 'net.ip=10.0.0.5/24', 'net.gw=10.0.0.1', 'net.dns=10.0.0.1']);
    await assert.rejects(writeConfigDrive(join(dir, 'bad.img'), { env: { K: 'a\0b' } }), /NUL/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config drive mounts volumes by label; a hostile label or mount point is refused and writes no drive', async () => {
  assert.deepEqual(parseDriveVolume('appdata:/data'), { label: 'appdata', fstype: 'ext4', mountPoint: '/data' });
  assert.deepEqual(parseDriveVolume('DATA:/srv/www:vfat'), { label: 'DATA', fstype: 'vfat', mountPoint: '/srv/www' });
  for (const bad of ['a:/data/../etc', 'a:data', 'a:/', 'a:/x:btrfs', 'a b:/x', 'seventeen-chars-x:/x', ':/x', 'a:/x:ext4:more', 'a:/./x', 'a:/x\nmount=b'])
    assert.throws(() => parseDriveVolume(bad), /bad volume/, bad);
  const dir = mkdtempSync(join(tmpdir(), 'unik-drive-'));
  try {
    const out = join(dir, 'drive.img');
    await writeConfigDrive(out, { volumes: [{ label: 'appdata', fstype: 'vfat', mountPoint: '/data' }] });
    const records = execFileSync('mtype', ['-i', out, '::/unik/config'], { encoding: 'latin1' }).split('\0').filter(Boolean);
    assert.deepEqual(records.filter((r) => r.startsWith('mount=')), ['mount=label=appdata:vfat:/data']);
    const hostile = join(dir, 'hostile.img');
    await assert.rejects(writeConfigDrive(hostile, { volumes: [{ label: 'x', fstype: 'vfat', mountPoint: '/data\0/etc' }] }), /bad volume/);
    assert.equal(existsSync(hostile), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
