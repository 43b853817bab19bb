// What a supervisor is asked to run (launch.json) and what it says of the VM (supervisor.json),
// both in the VM's own folder. The supervisor writes its status before QEMU starts and at every
// change, atomically (a rename), so a reader after any crash sees a whole record.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BootConfig } from '../base/linux/contract.js';
import type { ProxyRule } from './port-proxy.js';

export const LAUNCH_FILE = 'launch.json';
export const STATUS_FILE = 'supervisor.json';

/** The boot config as JSON: the seed is hex. */
export type LaunchConfig = Omit<BootConfig, 'seed' | 'now'> & { seed: string };

export interface Launch {
  /** the VM's name, for messages */
  id: string;
  /** the whole command ([setpriv …] qemu …), bound to the supervisor: it dies with it */
  argv: string[];
  /** restore a boot snapshot: QEMU gets the device state on fd 3 and `-incoming defer` */
  restore?: { stateFile: string; snapshotDir: string };
  /** sent on the control channel before the restored VM runs (its init waits for it) */
  config?: LaunchConfig;
  /** wait for "start" on this FIFO before the VM runs (unik-runc create/start, as runc's exec.fifo) */
  startFifo?: string;
  qmpSocket: string;
  controlSocket: string;
  /** QEMU's stdout (the guest console) copied to this file, rotated past maxBytes; absent: our own stdout */
  console?: { file: string; maxBytes: number };
  /** where the daemon sends stop, signal and kill */
  commandSocket?: string;
  /** until the VM is up: if this process stops being our parent (it died mid-launch), undo everything */
  parentPid?: number;
  /** a bridged network: QEMU makes the tap, the supervisor puts it on the bridge before the VM runs */
  nic?: { tap: string; bridge: string };
  /** published ports, relayed by the supervisor to the guest's own address (bridged networks) */
  proxies?: ProxyRule[];
  /** error lines (unik-runc's --log): a file, else stderr; runc's text or json format */
  log?: { file?: string; format: 'text' | 'json' };
}

/** exiting: the VM is being ended (its QEMU killed or going), the supervisor about to record its exit */
export type SupervisedState = 'launching' | 'paused' | 'running' | 'exiting' | 'exited';

export interface SupervisorStatus {
  pid: number;
  /** the supervisor's start time in clock ticks: a recycled pid is not mistaken for it */
  pidStart: string;
  qemuPid: number | null;
  /** QEMU's start time in clock ticks, to tell it from a process that took its pid since */
  qemuStart?: string;
  state: SupervisedState;
  /** the guest init started the app */
  ready: boolean;
  /** when it said so (absent in records of older supervisors) */
  readyAt?: string;
  /** the app's exit status as the guest init reported it, if it did */
  appExitCode: number | null;
  /** the supervisor's own exit status: the app's, else 128+signal, else 1 */
  exitCode: number | null;
  error: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export function readLaunch(dir: string): Launch {
  return JSON.parse(readFileSync(join(dir, LAUNCH_FILE), 'utf8')) as Launch;
}

export function writeLaunch(dir: string, l: Launch): void {
  writeAtomic(join(dir, LAUNCH_FILE), JSON.stringify(l, null, 2) + '\n');
}

/** The supervisor's last word on its VM, or undefined if it never wrote one. */
export function readStatus(dir: string): SupervisorStatus | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATUS_FILE), 'utf8')) as SupervisorStatus;
  } catch {
    return undefined;
  }
}

export function writeStatus(dir: string, s: SupervisorStatus): void {
  writeAtomic(join(dir, STATUS_FILE), JSON.stringify(s) + '\n');
}

/** Written whole or not at all, readable by its owner only (a launch holds the app's env and seed). */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.new`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

/** /proc/PID/stat's start time, or '' if there is no such living process (zombies count as gone). */
export function procStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return '';
    return fields[19] ?? '';
  } catch {
    return '';
  }
}

/** The parent of a process, from /proc (Node's process.ppid is read once, at start). */
export function parentOf(pid: number | 'self'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Is the supervisor this status names still alive (the same process, not a recycled pid)? */
export function supervisorAlive(s: SupervisorStatus | undefined): boolean {
  return !!s && s.pid > 0 && procStart(s.pid) === s.pidStart;
}
