// IPv4 subnets as numbers: parse, compare, and hand out addresses. Pure: no host calls.

import { invalid } from '../model/errors.js';

export interface Subnet {
  /** the network address as an unsigned 32-bit number */
  base: number;
  prefix: number;
}

/** the narrowest subnet that still holds a gateway, a broadcast address and some instances */
const MAX_PREFIX = 29;
/** a wider one would swallow whole private ranges of the host */
const MIN_PREFIX = 8;

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "A.B.C.D/P"; the address must be the network's own (10.89.0.0/24, not 10.89.0.5/24). */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
  const base = m ? parseIp(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (base === undefined || !(prefix >= MIN_PREFIX && prefix <= MAX_PREFIX))
    throw invalid('BAD_SUBNET', `bad subnet ${JSON.stringify(cidr)}`, `give an IPv4 network as A.B.C.D/PREFIX with a prefix from /${MIN_PREFIX} to /${MAX_PREFIX}, e.g. 10.89.1.0/24`);
  if ((base & mask(prefix)) >>> 0 !== base)
    throw invalid('BAD_SUBNET', `${cidr} is not a network address`, `did you mean ${formatIp((base & mask(prefix)) >>> 0)}/${prefix}?`);
  return { base, prefix };
}

/** Ranges that are not ordinary unicast networks: a bridge there would shadow the host's own. */
const SPECIAL: [string, number, string][] = [
  ['0.0.0.0', 8, '"this network"'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local (cloud metadata lives there)'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

/** Refuses a subnet that overlaps a special range. */
export function checkUsable(s: Subnet): void {
  for (const [ip, prefix, what] of SPECIAL)
    if (overlaps(s, { base: parseIp(ip)!, prefix })) throw invalid('BAD_SUBNET', `${formatSubnet(s)} overlaps ${ip}/${prefix}, which is ${what}`, 'use a private range, e.g. 10.89.1.0/24 or 172.30.0.0/24');
}

export function formatSubnet(s: Subnet): string {
  return `${formatIp(s.base)}/${s.prefix}`;
}

export function size(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

export function contains(s: Subnet, ip: number): boolean {
  return (ip & mask(s.prefix)) >>> 0 === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

/** The addresses instances may take: neither the network's nor its broadcast nor the gateway's. */
export function isHostAddress(s: Subnet, ip: number, gateway: number): boolean {
  return contains(s, ip) && ip !== s.base && ip !== s.base + size(s) - 1 && ip !== gateway;
}

/** The lowest free address for an instance, or undefined when the subnet is full. */
export function nextFree(s: Subnet, gateway: number, used: Set<number>): number | undefined {
  for (let ip = s.base + 1; ip < s.base + size(s) - 1; ip++) if (ip !== gateway && !used.has(ip)) return ip;
  return undefined;
}

/**
 * The first /24 in 10.89.0.0–10.89.255.0 that overlaps none of `taken` (unik's networks and
 * the host's own routes), for a network created without --subnet.
 */
export function pickSubnet(taken: Subnet[]): Subnet | undefined {
  const start = parseIp('10.89.0.0')!;
  for (let i = 0; i < 256; i++) {
    const s = { base: start + i * 256, prefix: 24 };
    if (!taken.some((t) => overlaps(s, t))) return s;
  }
  return undefined;
}

/** A locally administered, unicast MAC from an instance id (hex): stable across restarts. */
export function macFor(id: string): string {
  const hex = id.replace(/[^0-9a-f]/g, '').padEnd(10, '0').slice(0, 10);
  return ['02', ...hex.match(/../g)!].join(':');
}
