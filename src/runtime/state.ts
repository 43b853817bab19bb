// Per-container state under --root. A unikernel container owns <root>/.unik/<id>/; an id
// without that directory belongs to the real runc (its own <root>/<id>/), so every verb can
// tell who owns an id from the disk alone, after any restart.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { procStart, readStatus, type SupervisorStatus } from '../supervisor/launch.js';

export const DEFAULT_ROOT = '/run/unik-runc';

export interface ContainerState {
  id: string;
  bundle: string;
  rootfs: string;
  /** ISO time of create */
  created: string;
  /** the monitor: the container's process as the shim sees it */
  pid: number;
  /** its start time in clock ticks (/proc/PID/stat field 22): guards against pid reuse */
  pidStart: string;
  annotations: Record<string, string>;
  /** the pod network plumbing to undo on delete */
  net?: { netns: string; ifname: string; tap: string };
}

export type Status = 'created' | 'running' | 'stopped';

/** Files in a container's state directory. Relative names: socket paths must stay short. */
export const FILES = {
  state: 'state.json',
  fifo: 'start.fifo',
  qemuErr: 'qemu.err',
  qmp: 'qmp.sock',
  control: 'ctl.sock',
  initrd: 'initrd',
} as const;

export function validateId(id: string | undefined): string {
  if (!id) throw new Error('container id cannot be empty');
  if (!/^[\w+\-.]+$/.test(id) || id === '.' || id === '..') throw new Error(`invalid container id format: ${id}`);
  return id;
}

export class StateDir {
  readonly dir: string;
  constructor(
    readonly root: string,
    readonly id: string,
  ) {
    this.dir = join(root, '.unik', id);
  }

  file(name: string): string {
    return join(this.dir, name);
  }

  exists(): boolean {
    return existsSync(this.file(FILES.state)) || existsSync(this.dir);
  }

  create(): void {
    mkdirSync(join(this.root, '.unik'), { recursive: true, mode: 0o711 });
    mkdirSync(this.dir, { mode: 0o700 }); // fails if the id is taken
  }

  read(): ContainerState {
    return JSON.parse(readFileSync(this.file(FILES.state), 'utf8')) as ContainerState;
  }

  write(s: ContainerState): void {
    const tmp = this.file(FILES.state + '.tmp');
    writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n');
    renameSync(tmp, this.file(FILES.state));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** What the VM's supervisor last recorded (supervisor/launch.ts). */
  supervisor(): SupervisorStatus | undefined {
    return readStatus(this.dir);
  }

  /** The exit status the supervisor recorded, if it has ended. */
  exitCode(): number | null {
    return this.supervisor()?.exitCode ?? null;
  }

  status(s: ContainerState): Status {
    if (!processAlive(s.pid, s.pidStart)) return 'stopped';
    const state = this.supervisor()?.state;
    if (state === 'exited') return 'stopped';
    return state === 'running' || state === 'exiting' ? 'running' : 'created';
  }
}

/** /proc/PID/stat's start time, or '' if there is no such (living) process: the supervisor's own reading. */
export { procStart };

export function processAlive(pid: number, start: string): boolean {
  if (!pid) return false;
  const now = procStart(pid);
  return now !== '' && (start === '' || now === start);
}
