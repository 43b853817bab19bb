// unik export, proven by booting: each exported file is turned back into a disk with the tools
// a platform would use (qemu-img, tar), booted under QEMU on a PC machine with the firmware
// (SeaBIOS, or OVMF for UEFI) and the devices that platform gives its VMs, with a config drive
// carrying env and a volume found by its label; the app must answer HTTP, read that env and
// read the volume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, httpUntil, suiteDaemon } from './harness.js';
import { PLATFORMS } from '../../src/export/formats.js';

const OVMF = '/usr/share/ovmf/OVMF.fd';
const work = mkdtempSync(join(tmpdir(), 'unik-export-'));
let volumeFile = '';
const d = suiteDaemon({
  setup: async (dm) => {
    const r = await dm.cli(['push', 'go-http', join(ROOT, 'examples/go-http')]);
    assert.equal(r.code, 0, r.stderr);
    // a volume made by unik, found on the platform's disk controller by its filesystem's label
    mkdirSync(join(work, 'data'));
    writeFileSync(join(work, 'data', 'data.txt'), 'volume-by-label');
    const vol = await dm.cli(['create-volume', 'appdata', '--type', 'fat', '--data', join(work, 'data')]);
    assert.equal(vol.code, 0, vol.stderr);
    volumeFile = join(dm.home, 'volumes', (await dm.api('GET', '/volumes/appdata')).json.Id, 'disk.img');
    const drive = await dm.cli(['config-drive', '-o', join(work, 'drive.img'), '-e', 'KEY=from-the-config-drive', '--vol', 'appdata:/data:vfat']);
    assert.equal(drive.code, 0, drive.stderr);
  },
  teardown: () => rmSync(work, { recursive: true, force: true }),
});

type Disk = 'virtio' | 'nvme' | 'pvscsi' | 'ahci';

/** Each disk on its own controller of `kind` (the boot disk and the config drive may differ). */
function diskArgs(disks: { file: string; kind: Disk }[]): string[] {
  return disks.flatMap(({ file, kind }, i) => [
    '-drive', `file=${file},format=raw,if=none,id=d${i}`,
    ...(kind === 'virtio' ? ['-device', `virtio-blk-pci,drive=d${i}`]
    : kind === 'nvme' ? ['-device', `nvme,drive=d${i},serial=disk${i}`]
    : kind === 'pvscsi' ? ['-device', `pvscsi,id=c${i}`, '-device', `scsi-hd,drive=d${i},bus=c${i}.0`]
    : ['-device', `ahci,id=c${i}`, '-device', `ide-hd,drive=d${i},bus=c${i}.0`]),
  ]);
}

/** Boots a raw disk on q35 with the platform's devices; resolves its console once the app answers. */
/**
 * Boots a raw disk on q35 with the platform's devices; resolves its console once the app
 * answers. The config drive is on the platform's disk controller: the kernel must drive it. The
 * boot disk is too, but for UEFI on PVSCSI: Debian's OVMF has no PVSCSI driver (vSphere's
 * firmware has), so there the boot disk is on SATA and only the drive proves the kernel's.
 */
async function boot(raw: string, o: { firmware: 'bios' | 'uefi'; nic: string; disk: Disk; rtc?: string }): Promise<string> {
  const port = await freePort();
  const log = join(work, `console-${port}.log`);
  // a copy of the drive per boot: QEMU locks what it opens
  const drive = join(work, `drive-${port}.img`);
  execFileSync('cp', [join(work, 'drive.img'), drive]);
  const volume = join(work, `volume-${port}.img`);
  execFileSync('cp', [volumeFile, volume]);
  const args = [
    '-M', 'q35', '-accel', 'tcg', '-m', '256', '-smp', '1', '-nographic', '-no-reboot', '-nodefaults',
    ...(o.firmware === 'uefi' ? ['-bios', OVMF] : []),
    // the platform's clock (a PC's CMOS RTC), set apart from the host's when a test asks
    ...(o.rtc ? ['-rtc', `base=${o.rtc}`] : []),
    '-serial', `file:${log}`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`, '-device', `${o.nic},netdev=n0`,
    ...diskArgs([{ file: raw, kind: o.firmware === 'uefi' && o.disk === 'pvscsi' ? 'ahci' : o.disk }, { file: drive, kind: o.disk }, { file: volume, kind: o.disk }]),
  ];
  const q: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
  try {
    assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, 180_000).catch((e: Error) => `${e.message}\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : ''}`), 'pong');
    assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'from-the-config-drive');
    assert.equal(await httpUntil(`http://127.0.0.1:${port}/mount_test`), 'volume-by-label');
    return readFileSync(log, 'utf8');
  } finally {
    q.kill('SIGKILL');
  }
}

async function exported(format: string, firmware: string): Promise<string> {
  const out = join(work, `go-http-${firmware}.${format === 'gce' ? 'tar.gz' : format}`);
  const r = await d.cli(['export', 'go-http', '--format', format, '--firmware', firmware, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** back to a raw disk, as the platform's import would read it */
function toRaw(file: string, format: string): string {
  const raw = `${file}.raw`;
  if (format === 'raw') return file;
  if (format === 'gce') {
    const dir = mkdtempSync(join(work, 'gce-'));
    execFileSync('tar', ['-xzf', file, '-C', dir]);
    assert.deepEqual(readdirSync(dir), ['disk.raw']);
    return join(dir, 'disk.raw');
  }
  if (format === 'ova') {
    const dir = mkdtempSync(join(work, 'ova-'));
    execFileSync('tar', ['-xf', file, '-C', dir]);
    const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
    assert.match(names[0]!, /\.ovf$/, 'the descriptor comes first');
    const vmdk = names.find((n) => n.endsWith('.vmdk'))!;
    execFileSync('qemu-img', ['convert', '-O', 'raw', join(dir, vmdk), raw]);
    return raw;
  }
  const fmt = { qcow2: 'qcow2', vmdk: 'vmdk', vhd: 'vpc', vhdx: 'vhdx' }[format]!;
  // a fixed VHD has its footer at the end only, so probing takes it for raw: its format is given
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', ...(format === 'vhd' ? ['-f', 'vpc'] : []), file], { encoding: 'utf8' }));
  assert.equal(info.format, fmt);
  execFileSync('qemu-img', ['convert', '-f', fmt, '-O', 'raw', file, raw]);
  return raw;
}

test('raw, BIOS (SeaBIOS, syslinux): boots on q35 with NVMe and virtio-net (a KVM cloud, AWS), DHCP, env from a config drive; the clock is the platform\'s', async () => {
  const out = await boot(toRaw(await exported('raw', 'bios'), 'raw'), { firmware: 'bios', ...PLATFORMS.raw.qemuDevices, rtc: '2031-05-06T07:08:09' });
  // the PC's CMOS clock, not the config drive's time (when the drive was written)
  const seconds = Number(/clock from the hardware RTC: (\d+)/.exec(out)?.[1]);
  const at = Date.UTC(2031, 4, 6, 7, 8, 9) / 1000;
  assert.ok(seconds >= at && seconds < at + 600, `guest clock ${seconds}, platform clock ${at}:\n${out.slice(-2000)}`);
});

test('qcow2, UEFI (OVMF, a unified kernel image): boots with virtio-blk and virtio-net (OpenStack, libvirt)', async () => {
  await boot(toRaw(await exported('qcow2', 'uefi'), 'qcow2'), { firmware: 'uefi', ...PLATFORMS.qcow2.qemuDevices });
});

test('gce: disk.raw in a gzipped GNU tar (Google Cloud), BIOS with virtio', async () => {
  const file = await exported('gce', 'bios');
  assert.match(execFileSync('tar', ['--list', '-v', '-zf', file], { encoding: 'utf8' }), /disk\.raw/);
  await boot(toRaw(file, 'gce'), { firmware: 'bios', ...PLATFORMS.gce.qemuDevices });
});

test('ova (vSphere, VirtualBox): the OVF has what OVF 1.0 requires and its manifest matches; boots with vmxnet3 + PVSCSI under BIOS and under UEFI', async () => {
  const file = await exported('ova', 'both');
  const dir = mkdtempSync(join(work, 'ovf-'));
  execFileSync('tar', ['-xf', file, '-C', dir]);
  const ovfName = readdirSync(dir).find((n) => n.endsWith('.ovf'))!;
  const ovf = readFileSync(join(dir, ovfName), 'utf8');
  // the elements and attributes the OVF 1.0 envelope schema requires, and what importers read
  for (const re of [
    /^<\?xml version="1\.0"/,
    /<Envelope xmlns="http:\/\/schemas\.dmtf\.org\/ovf\/envelope\/1"/,
    /<References>\s*<File ovf:id="file1" ovf:href="go-http-disk1\.vmdk" ovf:size="\d+"\/>/,
    /<DiskSection>\s*<Info>[^<]+<\/Info>\s*<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="\d+"/,
    /<NetworkSection>\s*<Info>/,
    /<VirtualSystem ovf:id="go-http">\s*<Info>/,
    /<VirtualHardwareSection>\s*<Info>/,
    /<rasd:ResourceType>17<\/rasd:ResourceType>/, // a disk
    /<rasd:HostResource>ovf:\/disk\/vmdisk1<\/rasd:HostResource>/,
    /<rasd:ResourceSubType>VmxNet3<\/rasd:ResourceSubType>/,
  ])
    assert.match(ovf, re);
  const mf = readFileSync(join(dir, ovfName.replace(/\.ovf$/, '.mf')), 'utf8');
  for (const line of mf.trim().split('\n')) {
    const m = /^SHA256\((.+)\)= ([0-9a-f]{64})$/.exec(line)!;
    assert.equal(execFileSync('sha256sum', [join(dir, m[1]!)], { encoding: 'utf8' }).split(' ')[0], m[2]);
  }
  const raw = toRaw(file, 'ova');
  await boot(raw, { firmware: 'bios', ...PLATFORMS.ova.qemuDevices });
  await boot(raw, { firmware: 'uefi', ...PLATFORMS.ova.qemuDevices });
});

test('vhd (Azure, Hyper-V): a fixed VHD of a whole number of MiB; boots with e1000 + AHCI (what Hyper-V generation 1 and VirtualBox emulate)', async () => {
  const file = await exported('vhd', 'bios');
  // the footer's "current size" (what Azure checks; qemu-img info counts the footer too)
  const footer = readFileSync(file).subarray(-512);
  assert.equal(footer.subarray(0, 8).toString(), 'conectix');
  assert.equal(Number(footer.readBigUInt64BE(48)) % (1024 * 1024), 0);
  await boot(toRaw(file, 'vhd'), { firmware: 'bios', ...PLATFORMS.vhd.qemuDevices });
});

test('vmdk and vhdx: what each importer reads, proven by converting back and booting (UEFI)', async () => {
  await boot(toRaw(await exported('vmdk', 'uefi'), 'vmdk'), { firmware: 'uefi', ...PLATFORMS.vmdk.qemuDevices });
  await boot(toRaw(await exported('vhdx', 'uefi'), 'vhdx'), { firmware: 'uefi', ...PLATFORMS.vhdx.qemuDevices });
});

test('bad input: an unknown format or firmware, an unknown image: clear errors, nothing left behind', async () => {
  const bad = await d.api('POST', '/images/go-http/export?format=iso');
  assert.equal(bad.status, 400);
  assert.match(bad.json.message, /unknown export format "iso"/);
  assert.equal((await d.api('POST', '/images/go-http/export?format=raw&firmware=coreboot')).status, 400);
  assert.equal((await d.api('POST', '/images/nosuch/export?format=raw')).status, 404);
  const cli = await d.cli(['export', 'go-http', '--format', 'iso', '-o', join(work, 'x')]);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /invalid --format "iso"/);
  assert.deepEqual(readdirSync(join(d.home, 'tmp')).filter((n) => n.startsWith('export-')), []);
});
