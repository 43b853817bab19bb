// The host side of bridged networks: Linux bridges and forwarding, through iproute2 with argv
// arrays (never a shell). Every step is idempotent, so the daemon can redo it at each start
// (after a host reboot the bridges are gone, the store still has them).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { unavailable } from '../model/errors.js';
import { onPath } from '../util/exec.js';
import { parseIp, type Subnet } from './subnet.js';

export class HostCommandError extends Error {}

/** Runs a program, feeding `input` on stdin; resolves its stdout, rejects with its stderr. */
export function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e) => reject(new HostCommandError(`${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new HostCommandError(`${cmd} ${args.join(' ')}: ${err.trim() || `status ${code}`}`))));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Why this host cannot make bridged networks and what would let it, or undefined if it can. */
export function bridgedBlocker(): { why: string; fix: string } | undefined {
  if (process.env.UNIK_BRIDGED === 'off') return { why: 'bridged networks are turned off here (UNIK_BRIDGED=off)', fix: 'start the daemon without UNIK_BRIDGED=off' };
  if (process.getuid?.() !== 0) return { why: 'bridged networks need root (to make bridges, taps and NAT rules); the daemon runs unprivileged', fix: 'run the daemon as root (sudo unik daemon), or keep to --network user' };
  if (!onPath('ip')) return { why: 'iproute2 is not installed (apt-get install iproute2)', fix: 'apt-get install iproute2' };
  if (!onPath('nft')) return { why: 'nftables is not installed (apt-get install nftables)', fix: 'apt-get install nftables' };
  if (!existsSync('/dev/net/tun')) return { why: '/dev/net/tun is missing: the kernel has no tap devices', fix: 'modprobe tun' };
  return undefined;
}

/** Why this host cannot make bridged networks, or undefined if it can. */
export function bridgedUnavailable(): string | undefined {
  return bridgedBlocker()?.why;
}

export function requireBridged(): void {
  const why = bridgedUnavailable();
  if (why) throw unavailable('NO_BRIDGED_NETWORKS', why, 'use --network user (QEMU user-mode networking, with -p for ports)');
}

interface IpLink {
  ifname: string;
  ifalias?: string;
  operstate?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

async function links(): Promise<IpLink[]> {
  return JSON.parse(await run('ip', ['-j', '-d', 'addr', 'show'])) as IpLink[];
}

export async function linkExists(name: string): Promise<boolean> {
  return (await links()).some((l) => l.ifname === name);
}

/**
 * The bridge exists, tagged as this home's (`owner`, its alias), without IPv6 (a guest's router
 * advertisement must not give the host a route), holds exactly the gateway address, and is up.
 */
export async function ensureBridge(name: string, gateway: string, prefix: number, owner: string): Promise<void> {
  const link = (await links()).find((l) => l.ifname === name);
  if (link && link.linkinfo?.info_kind !== 'bridge') throw new HostCommandError(`a network device named ${name} exists and is not a bridge`);
  if (!link) await run('ip', ['link', 'add', 'name', name, 'type', 'bridge']);
  await run('ip', ['link', 'set', 'dev', name, 'alias', owner]);
  writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1\n');
  const addrs = (link?.addr_info ?? []).filter((a) => a.family === 'inet');
  if (!addrs.some((a) => a.local === gateway && a.prefixlen === prefix)) {
    for (const a of addrs) await run('ip', ['addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', name]);
    await run('ip', ['addr', 'add', `${gateway}/${prefix}`, 'dev', name]);
  }
  await run('ip', ['link', 'set', 'dev', name, 'up']);
}

/** The bridges tagged with `owner` (this home's), recorded or not. */
export async function ownedBridges(owner: string): Promise<string[]> {
  return (await links()).filter((l) => l.linkinfo?.info_kind === 'bridge' && l.ifalias === owner).map((l) => l.ifname);
}

/** Removes a bridge and, with it, its address and routes; a missing one is fine. */
export async function deleteBridge(name: string): Promise<void> {
  if (await linkExists(name)) await run('ip', ['link', 'del', 'dev', name]);
}

/** Attaches a VM's tap device to its network's bridge (QEMU made the tap; it goes when QEMU does). */
export async function plugTap(tap: string, bridge: string): Promise<void> {
  await run('ip', ['link', 'set', 'dev', tap, 'master', bridge, 'up']);
}

/** The subnets the host already routes (but for `ours`, the bridges unik made): a new network must not overlap them. */
export async function hostSubnets(ours: Set<string>): Promise<{ subnet: Subnet; dev: string }[]> {
  // every table: policy routing (VPNs) and the host's own addresses (the local table) count too
  const routes = JSON.parse(await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) as { dst?: string; dev?: string }[];
  const out: { subnet: Subnet; dev: string }[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || (r.dev && ours.has(r.dev))) continue;
    const [ip, p] = r.dst.split('/');
    const base = parseIp(ip!);
    const prefix = p === undefined ? 32 : Number(p);
    // a route that is not a plain IPv4 network (unusual) is not a clash we can judge
    if (base !== undefined && prefix >= 0 && prefix <= 32) out.push({ subnet: { base, prefix }, dev: r.dev ?? '' });
  }
  return out;
}

/** Instances reach beyond their bridge through the host: IPv4 forwarding on (as Docker and podman set it). */
export function enableForwarding(): void {
  const f = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1\n');
}
