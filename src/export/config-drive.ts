// A config drive for an exported image: a small FAT disk holding /unik/config (the guest
// contract's records), attached to the VM as a second disk, as cloud-init's NoCloud drive is.
// The guest init reads it at boot; what it gives overrides the image's own config.

import { rm, writeFile } from 'node:fs/promises';
import { encodeBootConfig, type BootConfig } from '../base/linux/contract.js';
import { execFileCollect, lastLines } from '../util/exec.js';

async function tool(cmd: string, args: string[]): Promise<void> {
  const r = await execFileCollect(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${lastLines(r.output, 8)}`);
}

export interface DriveConfig {
  env?: Record<string, string>;
  /** replaces the image's arguments when given */
  argv?: string[];
  hostname?: string;
  /** a static address (A.B.C.D/P) with its gateway and DNS server; without, DHCP */
  net?: { ip: string; gateway: string; dns: string };
  /** volumes: disks the platform attaches, found by their filesystem's label */
  volumes?: DriveVolume[];
}

export interface DriveVolume {
  label: string;
  fstype: 'ext4' | 'vfat';
  mountPoint: string;
}

/**
 * LABEL:/mount/point[:ext4|vfat], as `unik config-drive --vol` takes it. A label is what
 * mkfs.ext4 -L (16 bytes) or mkfs.fat -n (11) can hold; the mount point is absolute and plain.
 */
export function parseDriveVolume(spec: string): DriveVolume {
  const [label = '', mountPoint = '', fstype = 'ext4', ...rest] = spec.split(':');
  if (rest.length || !/^[A-Za-z0-9_.-]{1,16}$/.test(label)) throw new Error(`bad volume ${JSON.stringify(spec)}: give LABEL:/mount/point[:ext4|vfat], the label up to 16 letters, digits, "_", "." or "-"`);
  if (fstype !== 'ext4' && fstype !== 'vfat') throw new Error(`bad volume ${JSON.stringify(spec)}: the filesystem is ext4 or vfat`);
  if (!/^\/[A-Za-z0-9_.\/-]*$/.test(mountPoint) || mountPoint === '/' || mountPoint.split('/').some((p) => p === '..' || p === '.'))
    throw new Error(`bad volume ${JSON.stringify(spec)}: the mount point is an absolute path without "..", e.g. /data`);
  return { label, fstype, mountPoint };
}

export async function writeConfigDrive(out: string, c: DriveConfig): Promise<void> {
  // only the records given: the image's own config fills the rest (guest/init/init.c)
  const records = encodeBootConfig({
    argv: c.argv ?? [],
    env: c.env ?? {},
    cwd: '',
    hostname: c.hostname ?? '',
    time: Date.now() / 1000,
    ...(c.net ? { net: { ifname: 'eth0', ...c.net } } : {}),
    // re-checked here: the guest mounts what these say before the app starts
    mounts: (c.volumes ?? []).map((v) => parseDriveVolume(`${v.label}:${v.mountPoint}:${v.fstype}`)).map((v) => ({ serial: `label=${v.label}`, fstype: v.fstype, mountPoint: v.mountPoint })),
  } satisfies BootConfig)
    .toString('utf8')
    .split('\0')
    .filter((r) => r && !/^(cwd|hostname)=$/.test(r))
    .map((r) => r + '\0')
    .join('');
  const file = `${out}.config`;
  await writeFile(file, records);
  await rm(out, { force: true });
  try {
    await tool('mkfs.fat', ['-C', '-n', 'CIDATA', out, '2048']);
    await tool('mmd', ['-i', out, '::/unik']);
    await tool('mcopy', ['-i', out, file, '::/unik/config']);
  } finally {
    await rm(file, { force: true });
  }
}
