import { appendFile, copyFile, readFile, rm, stat } from 'node:fs/promises';
import { CpioWriter } from './cpio.js';

// The guest contract, host side: what the init in guest/init/init.c reads from /unik/config.
// Records are NUL-terminated "key=value" strings, so values may hold any byte but NUL.

export interface BootConfig {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  hostname: string;
  /** host wall clock, seconds since the epoch, at QEMU start */
  time: number;
  /** mac: set by init (a VM restored from a snapshot keeps its template's MAC otherwise) */
  net?: { ifname: string; ip: string; gateway: string; dns: string; mac?: string };
  /** disks to mount before the app starts, found by their virtio serial */
  mounts?: { serial: string; fstype: string; mountPoint: string }[];
  /** host wall clock, seconds since the epoch, when the config is sent (restores from a snapshot) */
  now?: number;
  /** host randomness for the guest's CRNG: VMs restored from one snapshot must not share it */
  seed?: Buffer;
  /** the user the app runs as (init calls setgroups, setgid, setuid before exec); absent: root */
  user?: { uid: number; gid: number; groups: number[] };
  /** the signal number an orderly stop sends the app; absent: SIGTERM */
  stopSignal?: number;
  /** a `--slim` profiling boot: init says every file the app opens on the console */
  profile?: boolean;
}

const MAX_ID = 0xfffffffe;
const isId = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_ID;

/** The `user` record: UID:GID, then the supplementary groups if there are any. */
export function userRecord(u: { uid: number; gid: number; groups: number[] }): string {
  if (!isId(u.uid) || !isId(u.gid) || !Array.isArray(u.groups) || u.groups.length > 64 || !u.groups.every(isId))
    throw new Error(`bad user ${JSON.stringify(u).slice(0, 120)}: ids are whole numbers below 2^32-1, at most 64 groups`);
  return `${u.uid}:${u.gid}${u.groups.length ? `:${u.groups.join(',')}` : ''}`;
}

/** The user-mode network QEMU gives every instance (slirp defaults). */
export const USER_NET = { ifname: 'eth0', ip: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3' } as const;

export function encodeBootConfig(c: BootConfig): Buffer {
  const recs: string[] = [];
  for (const a of c.argv) recs.push(`arg=${a}`);
  for (const [k, v] of Object.entries(c.env)) recs.push(`env=${k}=${v}`);
  recs.push(`cwd=${c.cwd}`, `hostname=${c.hostname}`, `time=${Math.floor(c.time)}`);
  if (c.net) recs.push(`net.if=${c.net.ifname}`, `net.ip=${c.net.ip}`, `net.gw=${c.net.gateway}`, `net.dns=${c.net.dns}`);
  if (c.net?.mac) recs.push(`net.mac=${c.net.mac}`);
  for (const m of c.mounts ?? []) recs.push(`mount=${m.serial}:${m.fstype}:${m.mountPoint}`);
  if (c.now !== undefined) recs.push(`now=${Math.floor(c.now)}`);
  if (c.seed) recs.push(`seed=${c.seed.toString('hex')}`);
  if (c.user) recs.push(`user=${userRecord(c.user)}`);
  if (c.stopSignal !== undefined) {
    if (!Number.isInteger(c.stopSignal) || c.stopSignal < 1 || c.stopSignal > 64) throw new Error(`bad stop signal ${c.stopSignal}`);
    recs.push(`stopsignal=${c.stopSignal}`);
  }
  if (c.profile) recs.push('profile=1');
  for (const r of recs) if (r.includes('\0')) throw new Error('boot config values cannot contain NUL bytes');
  return Buffer.from(recs.map((r) => r + '\0').join(''), 'utf8');
}

/**
 * Writes a cold boot's initrd: the image root, then the config as a second cpio archive, which
 * the kernel unpacks over the first. The kernel takes an uncompressed cpio after a compressed
 * one only at a 4-byte-aligned offset, skipping NULs to get there, so NULs go in between.
 */
export async function writeStartInitrd(path: string, root: string, c: BootConfig): Promise<void> {
  const configCpio = `${path}.config`;
  try {
    await writeBootConfigCpio(configCpio, c);
    await copyFile(root, path);
    const { size } = await stat(path);
    await appendFile(path, Buffer.concat([Buffer.alloc((4 - (size % 4)) % 4), await readFile(configCpio)]));
  } finally {
    await rm(configCpio, { force: true });
  }
}

/** Writes the config as a small cpio archive, to be appended to the image's initramfs. */
export async function writeBootConfigCpio(path: string, c: BootConfig): Promise<void> {
  const w = await CpioWriter.create(path);
  await w.dir('unik', 0o755);
  await w.file('unik/config', encodeBootConfig(c), 0o400);
  await w.finish();
}

/** The config as a restored VM's init reads it from the control channel: a length, then the records. */
export function bootConfigFrame(c: BootConfig): Buffer {
  const body = encodeBootConfig(c);
  return Buffer.concat([Buffer.from(`config ${body.length}\n`), body]);
}

/** The lines the init writes on the control channel (ttyS1), as the host reads them back. */
export interface GuestEvents {
  /** a snapshot template's init waits for its config */
  waiting: boolean;
  ready: boolean;
  exitCode: number | null;
}

export function parseGuestEvents(log: string): GuestEvents {
  let ready = false;
  let exitCode: number | null = null;
  let waiting = false;
  for (const line of log.split('\n')) {
    if (line.startsWith('unik:waiting')) waiting = true;
    if (line.startsWith('unik:ready')) ready = true;
    const m = /^unik:exit (\d+)/.exec(line);
    if (m) exitCode = Number(m[1]);
  }
  return { ready, exitCode, waiting };
}
