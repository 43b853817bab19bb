// The VM in a pod's network namespace: a tap device beside the pod's interface (eth0, made by
// CNI), joined to it by tc ingress redirects both ways, as urunc and Kata do. The guest takes
// eth0's address, gateway and MAC, so the bridge's ARP and FDB entries still match and the pod
// IP reaches the app. The namespace's own stack keeps its address but no longer sees traffic.

import { execFileSync } from 'node:child_process';

export class NetError extends Error {}

export const TAP = 'unik0';

export interface PodNet {
  ifname: string;
  /** A.B.C.D/PREFIX */
  ip: string;
  gateway: string;
  mac: string;
  mtu: number;
}

function inNs(netns: string, cmd: string, args: string[]): string {
  try {
    return execFileSync('nsenter', [`--net=${netns}`, '--', cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new NetError(`${cmd} ${args.join(' ')} in ${netns}: ${(err.stderr || err.message).trim()}`);
  }
}

interface IpAddr {
  ifname: string;
  address?: string;
  mtu?: number;
  link_type?: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** The pod's interface: the first non-loopback one with an IPv4 address. */
export function readPodNet(netns: string): PodNet {
  const links = JSON.parse(inNs(netns, 'ip', ['-j', 'addr', 'show'])) as IpAddr[];
  const link = links.find((l) => l.link_type !== 'loopback' && l.ifname !== TAP && l.addr_info?.some((a) => a.family === 'inet'));
  if (!link) throw new NetError(`the pod network namespace ${netns} has no interface with an IPv4 address (did the CNI plugin run?)`);
  const a = link.addr_info!.find((x) => x.family === 'inet')!;
  const routes = JSON.parse(inNs(netns, 'ip', ['-j', '-4', 'route', 'show', 'default'])) as { gateway?: string }[];
  const gateway = routes.find((r) => r.gateway)?.gateway;
  if (!gateway) throw new NetError(`the pod network namespace ${netns} has no IPv4 default route`);
  return { ifname: link.ifname, ip: `${a.local}/${a.prefixlen}`, gateway, mac: link.address ?? '', mtu: link.mtu ?? 1500 };
}

/** Creates the tap and the two redirects; undoes what it did if a step fails. */
export function plugTap(netns: string, pod: PodNet): void {
  const links = JSON.parse(inNs(netns, 'ip', ['-j', 'link', 'show'])) as IpAddr[];
  if (links.some((l) => l.ifname === TAP)) throw new NetError(`the pod network namespace ${netns} already has a ${TAP} device: one unikernel per pod network is supported`);
  try {
    inNs(netns, 'ip', ['tuntap', 'add', 'dev', TAP, 'mode', 'tap']);
    inNs(netns, 'ip', ['link', 'set', 'dev', TAP, 'mtu', String(pod.mtu), 'up']);
    for (const [from, to] of [[pod.ifname, TAP], [TAP, pod.ifname]] as const) {
      inNs(netns, 'tc', ['qdisc', 'add', 'dev', from, 'ingress']);
      // u32 "match everything" rather than matchall: cls_matchall is missing from some kernels
      inNs(netns, 'tc', ['filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to]);
    }
  } catch (e) {
    unplugTap(netns, pod.ifname);
    throw e;
  }
}

/** Best effort: the namespace may be gone already (then so are the tap and the filters). */
export function unplugTap(netns: string, ifname: string): void {
  for (const args of [['tc', 'qdisc', 'del', 'dev', ifname, 'ingress'], ['ip', 'link', 'del', 'dev', TAP]]) {
    try {
      execFileSync('nsenter', [`--net=${netns}`, '--', ...args], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}
