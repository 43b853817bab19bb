// The container's process as the shim sees it: one small process per unikernel container that
// owns QEMU for the VM's whole life.
// - `create` starts it detached and exits, so it is re-parented to the shim (a subreaper), which
//   reaps it and takes its exit status as the container's: the app's exit code, as the guest
//   init reports it on the control channel (`unik:exit N`).
// - It starts QEMU paused (-S) at once, so create fails early on a VM that cannot start, and
//   resumes it (QMP `cont`) when `start` writes to the start FIFO, as runc's exec.fifo does.
// - QEMU inherits its stdout, the task's stdout: the guest console (ttyS0) goes there.
// - SIGTERM/SIGINT ask the guest to stop (the init sends SIGTERM to the app); other signals go
//   to the app as `signal N`; SIGKILL kills the monitor, and QEMU with it: QEMU is bound to
//   its parent (confine.ts boundToParent), so it is never orphaned.

import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootConfigFrame, parseGuestEvents, type BootConfig } from '../base/linux/contract.js';
import { STATE_FD, loadSnapshot, openSnapshotState, type Snapshot } from '../providers/qemu/snapshot.js';
import { RuntimeLog } from './log.js';
import { Qmp } from '../providers/qemu/qmp.js';
import { FILES } from './state.js';

export interface Launch {
  id: string;
  /** restore the image's boot snapshot; the config goes to the guest at `start` */
  restore?: { snapshot: Snapshot; config: Omit<BootConfig, 'seed'> & { seed: string } };
  /** the full command: setpriv [nsenter] qemu … */
  argv: string[];
  log?: string;
  logFormat: 'text' | 'json';
}

/** fd 3 of the monitor: a pipe to `create`, which waits for "ok" or an error line. */
const STATUS_FD = 3;
const QEMU_UP_DEADLINE_MS = 30_000;
const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM'] as const;

export async function runMonitor(dir: string): Promise<void> {
  process.chdir(dir);
  const launch = JSON.parse(readFileSync(FILES.launch, 'utf8')) as Launch;
  const log = new RuntimeLog(launch.log, launch.logFormat);
  let reported = false;
  const report = (line: string) => {
    if (reported) return;
    reported = true;
    try {
      writeSync(STATUS_FD, line + '\n');
      closeSync(STATUS_FD);
    } catch {
      /* create has gone */
    }
  };

  const errFd = openSync(FILES.qemuErr, 'w');
  // QEMU's fd 3: a snapshot's device state to load (fd: migration), else /dev/null; never our
  // own fd 3, the status pipe to create, which an inherited copy would hold open
  let stateFd: number;
  try {
    stateFd = launch.restore ? openSnapshotState(launch.restore.snapshot) : openSync('/dev/null', 'r');
  } catch (e) {
    closeSync(errFd);
    throw new Error(`the boot snapshot of ${launch.id} cannot be read: ${(e as Error).message}`);
  }
  const stdio: ('ignore' | number)[] = ['ignore', 1, errFd];
  stdio[STATE_FD] = stateFd;
  const [cmd, ...args] = launch.argv;
  const qemu = spawn(cmd!, args, { stdio });
  closeSync(errFd);
  closeSync(stateFd);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) => {
    qemu.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    });
    qemu.once('error', (e) => {
      exit = { code: 127, signal: null };
      writeFileSync(FILES.qemuErr, `${cmd}: ${e.message}\n`, { flag: 'a' });
      resolve();
    });
  });
  if (qemu.pid) writeFileSync(FILES.qemuPid, String(qemu.pid));

  let started = false;
  let ready = false;
  let control: Socket | undefined;
  let done = false;

  const finish = async (code: number, why?: string) => {
    if (done) return;
    done = true;
    if (why) log.error(why);
    // the guest reported its exit after syncing: only the slow reset is left, so end QEMU now
    if (!exit) qemu.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
    control?.destroy();
    writeFileSync(FILES.exit, `${code}\n`);
    report(`error: ${why ?? `the VM ended (status ${code}) before it was started`}`);
    process.exit(code);
  };

  for (const sig of FORWARDED) {
    process.on(sig, () => {
      const n = constants.signals[sig];
      if (!started || !ready) {
        // nothing runs yet that could stop in an orderly way: end the VM, as a signal ends runc's init
        void finish(128 + n);
        return;
      }
      const line = sig === 'SIGTERM' || sig === 'SIGINT' ? 'stop' : `signal ${n}`;
      control?.write(line + '\n');
    });
  }

  // Wait for QEMU to be up (its QMP socket answers) or to fail.
  let qmp: Qmp | undefined;
  try {
    qmp = await Qmp.connect(FILES.qmp, QEMU_UP_DEADLINE_MS, () => !exit);
  } catch {
    /* reported below */
  }
  if (!qmp) {
    if (!exit) qemu.kill('SIGKILL');
    await exited;
    const why = readFileSync(FILES.qemuErr, 'utf8').trim().split('\n').slice(-5).join(' | ');
    report(`error: QEMU did not start (${exit?.signal ?? `status ${exit?.code}`}): ${why || 'no message'}`);
    writeFileSync(FILES.exit, '1\n');
    process.exit(1);
  }

  if (launch.restore) {
    try {
      await loadSnapshot(qmp);
    } catch (e) {
      // a broken snapshot (say, QEMU was upgraded): dropped, so the next create makes a new one
      rmSync(launch.restore.snapshot.dir, { recursive: true, force: true });
      return finish(1, `restoring the boot snapshot of ${launch.id} failed: ${(e as Error).message}`);
    }
  }

  // The control channel: guest events in, stop/signal commands out.
  control = await connectControl();
  let events = '';
  control?.setEncoding('utf8');
  control?.on('data', (d: string) => {
    events += d;
    if (/^unik:ready/m.test(events)) ready = true;
    const m = /^unik:exit (\d+)/m.exec(events);
    if (m) void finish(Number(m[1]));
  });
  control?.on('error', () => undefined);

  void exited.then(() => {
    const ev = parseGuestEvents(safeRead(FILES.controlLog) + events);
    if (ev.exitCode !== null) return finish(ev.exitCode);
    const e = exit!;
    const code = e.signal ? 128 + constants.signals[e.signal] : e.code || 1;
    const err = safeRead(FILES.qemuErr).trim().split('\n').slice(-3).join(' | ');
    return finish(code, `the VM of ${launch.id} ended before the app reported an exit (QEMU ${e.signal ?? `status ${e.code}`})${err ? `: ${err}` : ''}`);
  });

  report('ok');

  // `start` writes to the FIFO; opening it for reading blocks (in libuv's pool) until then.
  const fifo = createReadStream(FILES.fifo, { encoding: 'utf8' });
  fifo.on('error', () => undefined);
  let got = '';
  fifo.on('data', async (d: string | Buffer) => {
    got += String(d);
    if (started || !got.includes('start')) return;
    started = true;
    fifo.destroy();
    try {
      if (launch.restore) {
        // the restored init is blocked reading its config: argv, env, network, a fresh seed
        const c = launch.restore.config;
        if (!control) throw new Error('no control channel to send the config on');
        control.write(bootConfigFrame({ ...c, seed: Buffer.from(c.seed, 'hex'), now: Date.now() / 1000 }));
      }
      await qmp!.execute('cont');
      writeFileSync(FILES.started, new Date().toISOString() + '\n');
    } catch (e) {
      void finish(1, `cannot resume the VM of ${launch.id}: ${(e as Error).message}`);
    }
  });
}

async function connectControl(): Promise<Socket | undefined> {
  for (let i = 0; i < 50; i++) {
    const s = await new Promise<Socket | undefined>((resolve) => {
      const c = connect(FILES.control);
      c.once('connect', () => resolve(c));
      c.once('error', () => resolve(undefined));
    });
    if (s) return s;
    await sleep(20);
  }
  return undefined;
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}
