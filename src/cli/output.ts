// Docker-style output: borderless tables, --json, human sizes and relative times.
import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import type { ImageJson, InstanceJson, NetworkJson, PortMapping, VolumeJson } from '../api/types.js';

const BLANK_CHARS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '',
  right: '', 'right-mid': '', middle: '',
};

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * cli-table3's layout (below) for the usual table, whose cells are printable ASCII: each column
 * as wide as its longest cell plus 3. Loading cli-table3 costs ~10 ms, a tenth of a `unik ps`.
 * Undefined for anything else (wide or combining characters, line breaks, ragged rows).
 */
function asciiTable(head: string[], rows: string[][]): string | undefined {
  const all = [head, ...rows];
  if (!all.every((r) => r.length === head.length && r.every((c) => PRINTABLE_ASCII.test(c)))) return undefined;
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)) + 3);
  return all
    .map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('').trimEnd())
    .filter((l) => l !== '')
    .join('\n');
}

/** Renders rows under upper-case headers, columns separated by three spaces. */
export function renderTable(head: string[], rows: string[][]): string {
  return asciiTable(head, rows) ?? renderWithTable3(head, rows);
}

/** The general case: cli-table3 measures cells as a terminal shows them. Exported for the tests. */
export function renderWithTable3(head: string[], rows: string[][]): string {
  // required when such a table is printed, not when the CLI starts
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableType;
  const table = new Table({
    head,
    chars: BLANK_CHARS,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 3 },
  });
  table.push(...rows);
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '')
    .join('\n');
}

export function printTable(head: string[], rows: string[][], out: NodeJS.WritableStream = process.stdout): void {
  out.write(renderTable(head, rows) + '\n');
}

export function printJson(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(JSON.stringify(value, null, 2) + '\n');
}

const SIZE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Decimal units like docker: 512 B, 4.6 MB, 46 MB, 1.2 GB. */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '-';
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < SIZE_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  let text = value < 9.95 ? value.toFixed(1) : String(Math.round(value));
  // 999.6 kB rounds to "1000 kB": say 1.0 MB instead.
  if (Number(text) >= 1000 && unit < SIZE_UNITS.length - 1) {
    unit++;
    text = (value / 1000).toFixed(1);
  }
  return `${text} ${SIZE_UNITS[unit]}`;
}

/** docker's units.HumanDuration plus " ago": "2 minutes ago", "About an hour ago". */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const ms = Math.max(0, now - then); // a daemon clock ahead of ours reads as "just now"
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60_000);
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  let d: string;
  if (seconds < 1) d = 'Less than a second';
  else if (seconds === 1) d = '1 second';
  else if (seconds < 60) d = `${seconds} seconds`;
  else if (minutes === 1) d = 'About a minute';
  else if (minutes < 60) d = `${minutes} minutes`;
  else if (hours === 1) d = 'About an hour';
  else if (hours < 48) d = `${hours} hours`;
  else if (hours < 24 * 7 * 2) d = `${Math.floor(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) d = `${Math.floor(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) d = `${Math.floor(hours / 24 / 30)} months`;
  else d = `${Math.floor(hours / 24 / 365)} years`;
  return `${d} ago`;
}

// ICU's collator takes ~10 ms to set up, a tenth of a `unik ps`. For names of [a-z0-9.-] and for
// RFC 3339 UTC times, its order is the code-unit order (checked over every such name of up to
// three characters, and random times), so those skip it; anything else is compared by it.
const PLAIN = /^[a-z0-9.-]*$/;
const UTC_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** `a.localeCompare(b)`, in sign, without loading ICU's collation for the usual names and times. */
export function collate(a: string, b: string): number {
  if ((PLAIN.test(a) && PLAIN.test(b)) || (UTC_TIME.test(a) && UTC_TIME.test(b))) return a < b ? -1 : a > b ? 1 : 0;
  return a.localeCompare(b);
}

export const shortId = (id: string): string => id.slice(0, 12);

export const IMAGE_HEAD = ['NAME', 'ID', 'LANGUAGE', 'ARCH', 'PROVIDER', 'CREATED', 'SIZE'];

export function imageRow(img: ImageJson, now = Date.now()): string[] {
  const bytes = img.SizeBytes > 0 ? img.SizeBytes : (img.SizeMb ?? 0) * 1_000_000;
  // a 2016 daemon says nothing of the architecture: it built amd64 only
  return [img.Name, shortId(img.Id), img.Language ?? '', img.Architecture ?? 'amd64', img.Provider || img.Infrastructure, relativeTime(img.Created, now), humanSize(bytes)];
}

export const INSTANCE_HEAD = ['NAME', 'ID', 'IMAGE', 'STATE', 'ADDRESS', 'PORTS', 'CREATED'];

/** `127.0.0.1:18080->8080/tcp`; the daemon publishes on loopback unless told otherwise. */
export function formatPort(p: PortMapping): string {
  const ip = p.HostIp || '127.0.0.1';
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return `${host}:${p.HostPort}->${p.GuestPort}/${p.Protocol || 'tcp'}`;
}

export function instanceRow(inst: InstanceJson, now = Date.now()): string[] {
  return [
    inst.Name,
    shortId(inst.Id),
    inst.ImageName || shortId(inst.ImageId),
    inst.State,
    // user mode's 10.0.2.15 is the same for all and reachable from none: shown as "user"
    inst.Network && inst.Network !== 'user' ? `${inst.IpAddress} (${inst.Network})` : 'user',
    (inst.Ports ?? []).map(formatPort).join(', '),
    relativeTime(inst.Created, now),
  ];
}

export const NETWORK_HEAD = ['NAME', 'ID', 'SUBNET', 'GATEWAY', 'BRIDGE', 'INSTANCES', 'CREATED'];

export function networkRow(n: NetworkJson, now = Date.now()): string[] {
  const c = n.IPAM?.Config?.[0];
  return [n.Name, shortId(n.Id), c?.Subnet ?? '', c?.Gateway ?? '', n.Options?.['com.docker.network.bridge.name'] ?? '', String(Object.keys(n.Containers ?? {}).length), relativeTime(n.Created, now)];
}

export const VOLUME_HEAD = ['NAME', 'ID', 'TYPE', 'SIZE', 'ATTACHED', 'MOUNT', 'CREATED', 'STATUS'];

export function volumeRow(vol: VolumeJson, now = Date.now()): string[] {
  // The size the volume was made with (decimal MB, like every size here), else the disk file's.
  const bytes = vol.SizeMb > 0 ? vol.SizeMb * 1_000_000 : vol.SizeBytes;
  const error = (vol.Error ?? '').replace(/\s+/g, ' ').trim();
  return [
    vol.Name,
    shortId(vol.Id),
    vol.Type || '-',
    humanSize(bytes),
    vol.AttachedInstanceName || (vol.Attachment ? shortId(vol.Attachment) : '-'),
    vol.MountPoint || '-',
    relativeTime(vol.Created, now),
    error ? `! ${error}` : 'ok',
  ];
}

const UNSPECIFIED = new Set(['', '0.0.0.0', '::']);
const LOOPBACK = /^(127\.|::1$|localhost$)/;

/**
 * The URL a published port answers on. A wildcard bind is reachable at the daemon's own
 * host when that host is remote, else at 127.0.0.1.
 */
export function reachableUrl(p: PortMapping, daemonHost: string): string {
  let host = p.HostIp ?? '';
  if (UNSPECIFIED.has(host)) host = LOOPBACK.test(daemonHost) ? '127.0.0.1' : daemonHost;
  if (host.includes(':')) host = `[${host}]`;
  const scheme = p.Protocol === 'udp' ? 'udp' : 'http';
  return `${scheme}://${host}:${p.HostPort}`;
}
