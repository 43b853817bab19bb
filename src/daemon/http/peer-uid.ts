import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';

// Who is on the other end of a loopback TCP connection. QEMU's user-mode network maps the
// guest's gateway (10.0.2.2) to the host's 127.0.0.1, so code in any guest can connect to the
// daemon's loopback port; its packets arrive from the QEMU process, which runs as the
// unprivileged QEMU user. The kernel's socket table (/proc/net/tcp) names the owner of the
// client end: connections owned by the accounts guests and builds run as are refused.

/** Host users whose connections are never served: QEMU's and the build sandbox's. */
export const UNTRUSTED_USERS = ['unik-qemu', 'unik-build', 'nobody'];

export function uidsOf(names: string[]): number[] {
  const out: number[] = [];
  for (const name of names) {
    try {
      const uid = Number(execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(':')[2]);
      if (Number.isInteger(uid) && uid !== 0 && uid !== process.getuid?.()) out.push(uid);
    } catch {
      /* no such user here */
    }
  }
  return out;
}

/** /proc/net/tcp's form of an IPv4 address and port: the address as a little-endian word, the port big-endian. */
function procV4(ip: string, port: number): string {
  const hexIp = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0').toUpperCase()).reverse().join('');
  return `${hexIp}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

/** The same for IPv6: four 32-bit words, each little-endian. Only IPv4-mapped and ::1 are needed. */
function procV6(ip: string, port: number): string | undefined {
  let bytes: number[];
  if (ip === '::1') bytes = [...Array(15).fill(0), 1];
  else {
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (!m) return undefined;
    bytes = [...Array(10).fill(0), 0xff, 0xff, ...m[1]!.split('.').map(Number)];
  }
  let hex = '';
  for (let w = 0; w < 4; w++) for (let b = 3; b >= 0; b--) hex += bytes[w * 4 + b]!.toString(16).padStart(2, '0').toUpperCase();
  return `${hex}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

export interface Endpoints {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}

/** The uid owning the client end of this loopback connection, or undefined if it cannot be told. */
export function loopbackPeerUid(s: Endpoints): number | undefined {
  const { remoteAddress: ra, remotePort: rp, localAddress: la, localPort: lp } = s;
  if (!ra || !rp || !la || !lp) return undefined;
  const v4 = isIPv4(ra) && isIPv4(la);
  const client = v4 ? procV4(ra, rp) : procV6(ra, rp);
  const server = v4 ? procV4(la, lp) : procV6(la, lp);
  if (!client || !server) return undefined;
  let table: string;
  try {
    table = readFileSync(v4 ? '/proc/net/tcp' : '/proc/net/tcp6', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid …: the client's own entry has it as local
    if (f[1] === client && f[2] === server) return Number(f[7]);
  }
  return undefined;
}

export function isLoopbackAddress(ip: string | undefined): boolean {
  return !!ip && (/^127\./.test(ip) || ip === '::1' || /^::ffff:127\./i.test(ip));
}
