// Containers that are not unikernels (a pod's pause container, ordinary images) go to the real
// runc with the very same argv and stdio, as urunc does: mixed pods just work.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';

export function runcBinary(): string {
  return process.env.UNIK_RUNC_DELEGATE || (existsSync('/usr/sbin/runc') ? '/usr/sbin/runc' : 'runc');
}

/** Runs runc with argv, stdio inherited; returns its exit status (128+N if a signal ended it). */
export function delegate(argv: string[]): number {
  const r = spawnSync(runcBinary(), argv, { stdio: 'inherit' });
  if (r.error) throw new Error(`cannot run ${runcBinary()} for a non-unikernel container: ${r.error.message} (set UNIK_RUNC_DELEGATE to runc's path)`);
  if (r.signal) return 128 + (constants.signals[r.signal] ?? 1);
  return r.status ?? 1;
}
