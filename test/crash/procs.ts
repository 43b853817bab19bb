// What the crash checker reads from /proc: QEMU processes and their parents, and listening TCP
// ports with the processes that hold them. Nothing here trusts the daemon's own account.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

export interface Proc {
  pid: number;
  ppid: number;
  argv: string[];
}

/** A live (not zombie) process, or undefined. */
export function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    return { pid, ppid: Number(fields[1]), argv };
  } catch {
    return undefined;
  }
}

export function alive(pid: number | undefined | null): boolean {
  return !!pid && readProc(pid) !== undefined;
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

export function isQemu(p: Proc): boolean {
  return !!p.argv[0] && basename(p.argv[0]).startsWith('qemu-system');
}

/**
 * Every live qemu-system process of a home: its command line names a path under `home`, or it
 * inherited UNIK_HOME=home from the daemon that started it (the probes name no path).
 */
export function qemusOf(home: string): Proc[] {
  const marker = home.endsWith('/') ? home : `${home}/`;
  const env = `UNIK_HOME=${home.replace(/\/$/, '')}`;
  const out: Proc[] = [];
  for (const pid of pids()) {
    const p = readProc(pid);
    if (!p || !isQemu(p)) continue;
    if (p.argv.some((a) => a.includes(marker)) || environ(pid).includes(env)) out.push(p);
  }
  return out;
}

function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** The value after an option in an argv (`-name X` → X), with QEMU's doubled commas undone. */
export function optionOf(argv: string[], option: string): string | undefined {
  const i = argv.indexOf(option);
  return i >= 0 ? argv[i + 1]?.replace(/,,/g, ',') : undefined;
}

/** The pids above a process, nearest first, up to (not including) pid 1. */
export function ancestors(pid: number): number[] {
  const chain: number[] = [];
  let cur = readProc(pid)?.ppid;
  while (cur && cur > 1 && chain.length < 64) {
    chain.push(cur);
    cur = readProc(cur)?.ppid;
  }
  return chain;
}

export interface Listener {
  address: string;
  port: number;
  inode: number;
}

const LISTEN = '0A';

function parseHexAddress(hex: string): string {
  if (hex.length === 8) {
    const n = Number.parseInt(hex, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
  }
  // IPv6 in four little-endian 32-bit words; only the forms that matter here are named
  if (/^0{32}$/.test(hex)) return '::';
  if (/^0{16}FFFF0000/i.test(hex)) return `::ffff:${parseHexAddress(hex.slice(24))}`;
  return hex;
}

/** Sockets listening on TCP (IPv4 and IPv6) in this network namespace. */
export function tcpListeners(): Listener[] {
  const out: Listener[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN) continue;
      const [addr, port] = f[1]!.split(':');
      out.push({ address: parseHexAddress(addr!), port: Number.parseInt(port!, 16), inode: Number(f[9]) });
    }
  }
  return out;
}

/** A listener that anyone can reach on 127.0.0.1:port (bound there, or to every address). */
export function listensOnLoopback(l: Listener): boolean {
  return ['127.0.0.1', '0.0.0.0', '::', '::ffff:127.0.0.1'].includes(l.address);
}

/** The processes holding a socket inode open. */
export function socketHolders(inode: number): Proc[] {
  const want = `socket:[${inode}]`;
  const out: Proc[] = [];
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target === want) {
        const p = readProc(pid);
        if (p) out.push(p);
        break;
      }
    }
  }
  return out;
}

export function describe(p: Proc): string {
  const name = optionOf(p.argv, '-name');
  return `pid ${p.pid} (parent ${p.ppid}) ${basename(p.argv[0] ?? '?')}${name ? ` -name ${name}` : ''}`;
}
