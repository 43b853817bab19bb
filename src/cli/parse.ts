// Flag parsing that must fail before any call to the daemon.
import { posix } from 'node:path';
import { CliError } from './errors.js';

/** commander accumulator for repeatable flags. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) <= 0) {
    throw new CliError(`invalid ${flag} "${value}": expected a positive whole number`);
  }
  return Number(value);
}

export function parseNonNegativeInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim())) throw new CliError(`invalid ${flag} "${value}": expected a whole number`);
  return Number(value);
}

export interface PortFlag {
  hostIp?: string;
  hostPort: number;
  guestPort: number;
  protocol: 'tcp' | 'udp';
  /** The flag as given; the daemon parses this form itself. */
  spec: string;
}

function portNumber(text: string, spec: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) {
    throw new CliError(`invalid --port "${spec}": ${text || '(empty)'} is not a port number (1-65535)`);
  }
  return n;
}

/** `[IP:]HOSTPORT:GUESTPORT[/tcp|/udp]`; IPv6 host addresses go in brackets. */
export function parsePortFlag(spec: string): PortFlag {
  const usage = `invalid --port "${spec}": expected [IP:]HOSTPORT:GUESTPORT, e.g. 8080:80 or 127.0.0.1:8080:80`;
  let rest = spec.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const proto = /\/(tcp|udp)$/i.exec(rest);
  if (proto) {
    protocol = (proto[1] ?? 'tcp').toLowerCase() as 'tcp' | 'udp';
    rest = rest.slice(0, proto.index);
  }
  let hostIp: string | undefined;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2] ?? '';
  }
  const parts = rest.split(':');
  if (parts.length === 3 && hostIp === undefined) {
    hostIp = parts.shift();
    if (!hostIp || !/^[A-Za-z0-9.-]+$/.test(hostIp)) throw new CliError(usage);
  }
  if (parts.length !== 2) throw new CliError(usage);
  const [host = '', guest = ''] = parts;
  const flag: PortFlag = { hostPort: portNumber(host, spec), guestPort: portNumber(guest, spec), protocol, spec };
  if (hostIp !== undefined) flag.hostIp = hostIp;
  return flag;
}

/** `K=V` flags to an env map; split on the first `=` so values may contain `=`. */
export function parseEnvFlags(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new CliError(`invalid --env "${v}": expected KEY=VALUE`);
    env[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return env;
}

/**
 * An absolute guest path for a volume; returns it normalized (`/data/` → `/data`) so the run's
 * mount points match the ones the image was built with.
 */
export function parseMountPoint(value: string, flag: string): string {
  const usage = `invalid ${flag} "${value}"`;
  if (!value.startsWith('/')) throw new CliError(`${usage}: a mount point must be an absolute path, e.g. /data`);
  if (value.includes(',')) throw new CliError(`${usage}: a mount point cannot contain ","`);
  if (/[\s\x00-\x1f\x7f]/.test(value)) throw new CliError(`${usage}: a mount point cannot contain spaces or control characters`);
  const normalized = posix.normalize(value).replace(/\/+$/, '');
  if (!normalized) throw new CliError(`${usage}: a volume cannot be mounted at /`);
  return normalized;
}

/** Repeated `--mountpoint` flags of a build, checked and without duplicates. */
export function parseMountPoints(values: string[]): string[] {
  const seen = new Set<string>();
  for (const v of values) {
    const mp = parseMountPoint(v, '--mountpoint');
    if (seen.has(mp)) throw new CliError(`--mountpoint ${mp} is given twice`);
    seen.add(mp);
  }
  return [...seen];
}

/**
 * 2016 `--vol VOLUME:MOUNTPOINT` to the RunRequest Mounts map (mount point → volume). Splits on
 * the first ":", so the mount point may contain ":" but the volume name cannot.
 */
export function parseVolFlags(values: string[]): Record<string, string> {
  const mounts: Record<string, string> = {};
  const volumes = new Set<string>();
  for (const v of values) {
    const colon = v.indexOf(':');
    if (colon <= 0 || colon === v.length - 1) {
      throw new CliError(`invalid --vol "${v}": expected VOLUME:MOUNTPOINT, e.g. data:/data`);
    }
    const volume = v.slice(0, colon);
    const mountPoint = parseMountPoint(v.slice(colon + 1), '--vol');
    if (mounts[mountPoint] !== undefined) throw new CliError(`invalid --vol "${v}": ${mountPoint} already has volume ${mounts[mountPoint]}`);
    if (volumes.has(volume)) throw new CliError(`invalid --vol "${v}": volume ${volume} is given twice`, 'a volume is mounted at one place only');
    volumes.add(volume);
    mounts[mountPoint] = volume;
  }
  return mounts;
}

/** `linux-go-qemu` → its parts; the language is everything between base and provider. */
export function splitCompilerName(name: string): { base: string; lang: string; provider: string } | undefined {
  const parts = name.split('-');
  if (parts.length < 3) return undefined;
  const base = parts[0] ?? '';
  const provider = parts[parts.length - 1] ?? '';
  return { base, lang: parts.slice(1, -1).join('-'), provider };
}
