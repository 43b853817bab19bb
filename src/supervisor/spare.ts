// A supervisor started ahead of the next run: Node started and the supervisor's modules loaded
// (0.06-0.1 s of every run here), waiting on its launcher pipe for the folder of the VM it will
// supervise. A daemon keeps one once it has run a VM. A spare that loses its launcher (a daemon
// killed) reads the end of the pipe and exits, so none outlives the daemon unused.
//
// It has no folder while it waits, so nothing to log to: its stdout and stderr are /dev/null, and
// once it has its folder it writes its errors to the VM's supervisor.log, as a supervisor started
// for the VM does (main.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { SUPERVISOR_MAIN, supervisorEnv } from './client.js';

/** the argument that makes the supervisor's main wait for its folder on fd 3 */
export const SPARE_ARG = '--spare';

export interface Spare {
  child: ChildProcess;
  /** fd 3 of the spare: the folder goes in, its launch report comes out */
  pipe: Duplex;
}

export class SupervisorSpares {
  private spare: Spare | undefined;
  private closed = false;
  private refilling: NodeJS.Timeout | undefined;

  /**
   * `instancesDir`: the folder of the VMs' folders, named on the spare's command line as a
   * supervisor's own folder is on its (what finds a home's processes, `pkill -f HOME/instances`,
   * finds spares too), and the only place a spare takes a folder from
   */
  constructor(private readonly instancesDir: string) {}

  /** The waiting spare, if one is alive; the next is started a little later, off this run's path. */
  take(): Spare | undefined {
    const s = this.spare;
    this.spare = undefined;
    this.refillSoon();
    if (!s || s.child.exitCode !== null || s.child.signalCode !== null || s.pipe.destroyed) return undefined;
    return s;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refilling);
    const s = this.spare;
    this.spare = undefined;
    if (s) {
      s.pipe.destroy();
      s.child.kill('SIGKILL');
    }
  }

  private refillSoon(): void {
    if (this.closed || this.refilling) return;
    // not at once: the run that took the spare is starting its QEMU on the same cores
    this.refilling = setTimeout(() => {
      this.refilling = undefined;
      if (!this.closed && !this.spare) this.spare = this.start();
    }, 500);
    this.refilling.unref();
  }

  private start(): Spare {
    const child = spawn(process.execPath, [SUPERVISOR_MAIN, SPARE_ARG, this.instancesDir], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], detached: true, env: supervisorEnv() });
    const pipe = child.stdio[3] as Duplex;
    // a waiting spare keeps neither the daemon's loop alive nor its own record once gone
    child.unref();
    (pipe as Duplex & { unref(): void }).unref();
    pipe.on('error', () => undefined);
    child.on('error', () => undefined);
    child.once('exit', () => {
      if (this.spare?.child === child) this.spare = undefined;
    });
    return { child, pipe };
  }
}
