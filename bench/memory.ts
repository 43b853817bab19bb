// Host memory of a running instance, read from /proc: PSS (pages shared with other processes,
// copy-on-write from a snapshot or mapped from one binary, are split among them) and RSS beside it,
// for unik's VM (its supervisor and the QEMU below it) and for a container (its processes and conmon).
import { readFileSync } from 'node:fs';
import { processTree } from '../src/providers/qemu/state-receiver.js';

export interface Mem {
  /** the app side: the QEMU process, or the container's processes */
  pssKb: number;
  rssKb: number;
  processes: number;
  /** the per-instance helper: unik's supervisor, podman's conmon */
  helperPssKb: number;
  helperRssKb: number;
  /** unik: the part of the QEMU figures that is the guest's RAM (the mapping of MemoryMb) */
  guestPssKb?: number;
  guestRssKb?: number;
  /** unik: the part that is TCG's code buffer (anonymous executable mappings); none under KVM */
  codePssKb?: number;
  codeRssKb?: number;
  /** unik: QEMU's largest mappings by RSS */
  largest?: { mapping: string; sizeKb: number; rssKb: number; pssKb: number }[];
}

export function smaps(pid: number): { pssKb: number; rssKb: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { pssKb: Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0), rssKb: Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0) };
  } catch {
    return { pssKb: 0, rssKb: 0 };
  }
}

export function sumSmaps(pids: number[]): { pssKb: number; rssKb: number } {
  return pids.map(smaps).reduce((a, b) => ({ pssKb: a.pssKb + b.pssKb, rssKb: a.rssKb + b.rssKb }), { pssKb: 0, rssKb: 0 });
}

export const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

/**
 * Where QEMU's memory is: the guest's RAM (the one mapping of MemoryMb), TCG's translated code
 * (anonymous executable mappings: the code buffer), and the largest mappings, from /proc/PID/smaps.
 */
export function qemuBreakdown(pid: number, memoryMb: number): Pick<Mem, 'guestPssKb' | 'guestRssKb' | 'codePssKb' | 'codeRssKb' | 'largest'> {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return {};
  }
  const out = { guestPssKb: 0, guestRssKb: 0, codePssKb: 0, codeRssKb: 0 };
  const maps: { mapping: string; sizeKb: number; rssKb: number; pssKb: number }[] = [];
  // one block per mapping: its header line (range perms offset dev inode [path]), then "Key: N kB" lines
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.slice(0, block.indexOf('\n')).trim().split(/\s+/);
    const perms = header[1] ?? '';
    const path = header.slice(5).join(' ');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(block)?.[1] ?? 0);
    const m = { mapping: `${perms} ${path || '[anon]'}`, sizeKb: kb('Size'), rssKb: kb('Rss'), pssKb: kb('Pss') };
    maps.push(m);
    if (m.sizeKb === memoryMb * 1024) {
      out.guestPssKb += m.pssKb;
      out.guestRssKb += m.rssKb;
    } else if (perms.includes('x') && !path) {
      out.codePssKb += m.pssKb;
      out.codeRssKb += m.rssKb;
    }
  }
  return { ...out, largest: maps.sort((a, b) => b.rssKb - a.rssKb).slice(0, 6) };
}

/** The instance's supervisor (the API's Pid) and the QEMU below it (setpriv/unshare may sit between). */
export function unikMem(supervisorPid: number, memoryMb: number): Mem | undefined {
  const qemu = processTree(supervisorPid).filter((p) => comm(p).startsWith('qemu-system'));
  if (qemu.length !== 1) return undefined;
  const q = smaps(qemu[0]!);
  const sup = smaps(supervisorPid);
  return { ...q, processes: 1, helperPssKb: sup.pssKb, helperRssKb: sup.rssKb, ...qemuBreakdown(qemu[0]!, memoryMb) };
}

/** The container's processes (its first process and everything below it) and its conmon. */
export function podmanMem(appPid: number, conmonPid: number): Mem {
  const pids = processTree(appPid);
  const c = smaps(conmonPid);
  return { ...sumSmaps(pids), processes: pids.length, helperPssKb: c.pssKb, helperRssKb: c.rssKb };
}

