// Flag parsing that must fail before any call to the daemon.
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

/** 2016 `--vol VOLUME:MOUNTPOINT` to the RunRequest Mounts map (mount point → volume). */
export function parseVolFlags(values: string[]): Record<string, string> {
  const mounts: Record<string, string> = {};
  for (const v of values) {
    const colon = v.indexOf(':');
    if (colon <= 0 || colon === v.length - 1) {
      throw new CliError(`invalid --vol "${v}": expected VOLUME:MOUNTPOINT, e.g. data:/data`);
    }
    mounts[v.slice(colon + 1)] = v.slice(0, colon);
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
