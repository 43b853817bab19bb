import { readFileSync } from 'node:fs';

/**
 * Is this pid our VM (one started by a unik from before supervisors)? Checks the process is
 * alive (not a zombie) and that its command line names the instance's directory, so a
 * recycled pid is never mistaken for the VM.
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
