import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Is this pid our VM? Checks the process is alive (not a zombie) and that its command line
 * names the instance's directory, so a recycled pid is never mistaken for the VM.
 */
export function isOurVm(pid: number | null, marker: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

/** Waits until the VM is gone; true if it went within the deadline. */
export async function waitGone(pid: number, marker: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isOurVm(pid, marker)) return true;
    await sleep(25);
  }
  return !isOurVm(pid, marker);
}
