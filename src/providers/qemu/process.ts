import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * The QEMU process at or under `pid`: the supervisor starts QEMU through wrappers (setpriv,
 * unshare for a PID namespace), which it knows the pid of; QEMU is the first descendant whose
 * command name is qemu-system-*.
 */
export function qemuUnder(pid: number, depth = 4): number | undefined {
  try {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system')) return pid;
    if (depth === 0) return undefined;
    for (const task of readdirSync(`/proc/${pid}/task`))
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
        const found = qemuUnder(Number(child), depth - 1);
        if (found) return found;
      }
  } catch {
    /* gone meanwhile */
  }
  return undefined;
}
