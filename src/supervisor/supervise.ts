// The supervisor: one small process per VM, as containerd's shim and podman's conmon are. It
// owns the QEMU process (QEMU is bound to it and dies with it, SIGKILL included), its exit
// status, stop and signals, the console and its rotation, and the one restore sequence of a
// boot snapshot. It writes its status (launch.ts) before QEMU starts and at every change.
//
// Who starts it: the daemon (one per instance, detached, so VMs outlive a daemon restart and
// the daemon reattaches by reading the status) and unik-runc's create (the container's process,
// re-parented to the shim, which takes its exit status as the container's).
//
// fd 3 on start: a pipe to the launcher, which gets one JSON line: {"ok":true} once the VM is
// up (running, or paused waiting for its start FIFO), or what went wrong.

import { spawn } from 'node:child_process';
import { constants as constants_fs, appendFileSync, closeSync, createReadStream, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootConfigFrame } from '../base/linux/contract.js';
import { Qmp } from '../providers/qemu/qmp.js';
import { RotatingConsole } from './console.js';
import { GuestLines } from './guest-lines.js';
import { parentOf, procStart, readLaunch, writeStatus, type Launch, type SupervisorStatus } from './launch.js';
import { STATE_FD, loadSnapshot } from './restore.js';
import { startProxies, type Proxies } from './port-proxy.js';
import { plugTap } from '../network/host.js';

const REPORT_FD = 3;
const QEMU_UP_DEADLINE_MS = 30_000;
const PARENT_CHECK_MS = 50;
/** the signals whose default action ends a process */
const ENDING = new Set([constants.signals.SIGTERM, constants.signals.SIGINT, constants.signals.SIGHUP, constants.signals.SIGQUIT, constants.signals.SIGALRM, constants.signals.SIGUSR1, constants.signals.SIGUSR2]);
const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM'] as const;

/** What the launcher reads on fd 3. */
export type LaunchReport =
  | { ok: true; qemuPid: number }
  | { ok: false; phase: 'launch' | 'restore' | 'resume'; message: string; code?: number | null; signal?: string | null; stderr?: string };

export async function supervise(dir: string): Promise<void> {
  process.chdir(dir);
  const launch = readLaunch('.');
  const logError = (msg: string) => writeLog(launch, msg);
  const status: SupervisorStatus = {
    pid: process.pid,
    pidStart: procStart(process.pid),
    qemuPid: null,
    state: 'launching',
    ready: false,
    appExitCode: null,
    exitCode: null,
    error: '',
    startedAt: null,
    finishedAt: null,
  };
  // a status that cannot be written (a full disk) must not take the VM down: the next save retries
  const save = () => {
    try {
      writeStatus('.', status);
    } catch (e) {
      logError(`cannot record the VM's status: ${(e as Error).message}`);
    }
  };
  let reported = false;
  const report = (r: LaunchReport) => {
    if (reported) return;
    reported = true;
    try {
      writeSync(REPORT_FD, JSON.stringify(r) + '\n');
      closeSync(REPORT_FD);
    } catch {
      /* the launcher has gone */
    }
  };
  const parentGone = () => launch.parentPid !== undefined && parentOf('self') !== launch.parentPid;

  // the record comes before the effect: the status exists before QEMU does
  save();
  if (parentGone()) {
    report({ ok: false, phase: 'launch', message: 'the launcher died before the VM started' });
    process.exit(1);
  }

  // published ports are held before QEMU starts: one that is taken fails the launch at once
  let proxies: Proxies | undefined;
  try {
    if (launch.proxies?.length) proxies = await startProxies(launch.proxies);
  } catch (e) {
    const message = (e as Error).message;
    report({ ok: false, phase: 'launch', message });
    status.state = 'exited';
    status.exitCode = 1;
    status.error = message;
    save();
    process.exit(1);
  }

  const errFd = openSync('qemu.err', 'w');
  let stateFd: number;
  try {
    // QEMU's fd 3: a snapshot's device state, else /dev/null; never our own fd 3 (the report
    // pipe), which an inherited copy would hold open
    stateFd = launch.restore ? openSync(launch.restore.stateFile, 'r') : openSync('/dev/null', 'r');
  } catch (e) {
    closeSync(errFd);
    const message = `the boot snapshot of ${launch.id} cannot be read: ${(e as Error).message}`;
    report({ ok: false, phase: 'restore', message });
    status.state = 'exited';
    status.exitCode = 1;
    status.error = message;
    save();
    process.exit(1);
  }
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', launch.console ? 'pipe' : 1, errFd];
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
      appendFileSync('qemu.err', `${cmd}: ${e.message}\n`);
      resolve();
    });
  });
  status.qemuPid = qemu.pid ?? null;
  if (qemu.pid) status.qemuStart = procStart(qemu.pid);
  status.startedAt = new Date().toISOString();
  save();

  const consoleSink = launch.console ? new RotatingConsole(launch.console.file, launch.console.maxBytes) : undefined;
  qemu.stdout?.on('data', (d: Buffer) => consoleSink?.write(d));
  const consoleDrained = qemu.stdout ? new Promise<void>((r) => qemu.stdout!.once('close', () => r())) : Promise.resolve();

  let control: Socket | undefined;
  // the guest's events, read line by line; a guest cannot make us keep more than one short line
  const guest = new GuestLines();
  let done = false;
  let server: Server | undefined;
  const waiters: Socket[] = [];

  const killQemu = () => {
    if (!exit) qemu.kill('SIGKILL');
  };

  const finish = async (code: number, why?: string, phase: 'launch' | 'restore' | 'resume' = 'launch'): Promise<never> => {
    if (!done) {
      done = true;
      if (why) logError(why);
      // said at once: a daemon restarted meanwhile must not adopt a VM that is going
      status.state = 'exiting';
      save();
      // unik-runc: a start FIFO still waited on holds an open() in libuv's pool, which would keep
      // this process from exiting; a writer that comes and goes releases it
      if (launch.startFifo) releaseFifo(launch.startFifo);
      // a reported exit: the guest synced before saying so, only the slow reset is left
      killQemu();
      await Promise.race([exited, sleep(5000)]);
      await Promise.race([consoleDrained, sleep(500)]);
      consoleSink?.close();
      control?.destroy();
      proxies?.close();
      status.state = 'exited';
      status.appExitCode = guest.exitCode;
      status.ready ||= guest.ready;
      status.exitCode = code;
      status.error = why ?? '';
      status.finishedAt = new Date().toISOString();
      save();
      report({ ok: false, phase, message: why ?? `the VM ended (status ${code}) before it was up`, code: exit?.code ?? null, signal: exit?.signal ?? null, stderr: lastLines('qemu.err', 5) });
      for (const w of waiters) w.end('ok\n');
      server?.close();
      if (launch.commandSocket) rmSync(launch.commandSocket, { force: true });
      // let the replies go out before leaving
      await sleep(waiters.length ? 20 : 0);
      process.exit(code);
    }
    return new Promise<never>(() => {});
  };

  // While launching: if the launcher dies (a daemon killed mid-run), this VM has no record it
  // can trust: undo it. Once up, the VM outlives its launcher.
  const parentWatch = launch.parentPid !== undefined ? setInterval(() => parentGone() && void finish(1, 'the daemon stopped while the VM was starting'), PARENT_CHECK_MS) : undefined;

  const stopVm = async (graceMs: number) => {
    if (control && status.ready && !done) {
      control.write('stop\n');
      const until = Date.now() + graceMs;
      while (Date.now() < until && !done && guest.exitCode === null) await sleep(20);
    } else if (!done) {
      // no guest to ask (still booting, or an init without a control channel): QEMU quits on SIGTERM
      if (!exit) qemu.kill('SIGTERM');
      await Promise.race([exited, sleep(Math.min(graceMs, 2000))]);
    }
    await finish(guest.exitCode ?? 128 + constants.signals.SIGKILL);
  };

  const passSignal = (n: number) => {
    const ending = ENDING.has(n);
    if (n === constants.signals.SIGKILL) return void finish(128 + n);
    // nothing runs yet that could stop in order: an ending signal ends the VM, as it ends runc's
    // init; others (SIGWINCH, SIGUSR1…) have no one to go to yet
    if (!control || !status.ready) return ending ? void finish(128 + n) : undefined;
    control.write(n === constants.signals.SIGTERM || n === constants.signals.SIGINT ? 'stop\n' : `signal ${n}\n`);
  };
  for (const sig of FORWARDED) process.on(sig, () => passSignal(constants.signals[sig]));

  // QEMU is up once its monitor answers, every device and port forward set up
  let qmp: Qmp | undefined;
  try {
    qmp = await Qmp.connect(launch.qmpSocket, QEMU_UP_DEADLINE_MS, () => !exit);
  } catch {
    /* said below */
  }
  if (!qmp) {
    killQemu();
    await exited;
    return finish(exit?.code === 0 ? 0 : 1, `QEMU did not start (${exit?.signal ?? `status ${exit?.code}`}): ${lastLines('qemu.err', 5) || 'no message'}`);
  }

  if (launch.restore) {
    try {
      await loadSnapshot(qmp);
    } catch (e) {
      return finish(1, `restoring the boot snapshot of ${launch.id} failed: ${(e as Error).message}`, 'restore');
    }
  }

  if (launch.nic) {
    try {
      await plugTap(launch.nic.tap, launch.nic.bridge);
    } catch (e) {
      return finish(1, `cannot put the VM of ${launch.id} on its network: ${(e as Error).message}`);
    }
  }

  control = await connectControl(launch.controlSocket);
  control?.setEncoding('utf8');
  control?.on('data', (d: string) => {
    guest.feed(d);
    if (!status.ready && guest.ready) {
      status.ready = true;
      status.readyAt = new Date().toISOString();
      save();
    }
    if (guest.exitCode !== null) void finish(guest.exitCode);
  });
  control?.on('error', () => undefined);

  void exited.then(() => {
    if (guest.exitCode !== null) return finish(guest.exitCode);
    const e = exit!;
    const code = e.signal ? 128 + constants.signals[e.signal] : e.code || 1;
    // status 0 with no exit reported: the guest reset (it died while booting, or halted)
    return finish(code, `the VM of ${launch.id} ended before the app reported an exit (QEMU ${e.signal ?? `status ${e.code}`})${lastLines('qemu.err', 3) ? `: ${lastLines('qemu.err', 3)}` : ''}`);
  });

  if (launch.commandSocket) server = serveCommands(launch.commandSocket, { stop: stopVm, signal: passSignal, waiters });

  const resume = async () => {
    if (launch.config) {
      // the restored init is blocked reading its config: argv, env, network, a fresh seed
      if (!control) throw new Error('no control channel to send the config on');
      const c = launch.config;
      control.write(bootConfigFrame({ ...c, seed: Buffer.from(c.seed, 'hex'), now: Date.now() / 1000 }));
    }
    await qmp!.execute('cont');
    qmp!.close();
    if (done) return;
    status.state = 'running';
    save();
  };

  if (launch.startFifo) {
    status.state = 'paused';
    save();
    if (parentWatch) clearInterval(parentWatch);
    report({ ok: true, qemuPid: qemu.pid! });
    // `start` writes to the FIFO; opening it for reading blocks (in libuv's pool) until then
    const fifo = createReadStream(launch.startFifo, { encoding: 'utf8' });
    fifo.on('error', () => undefined);
    let got = '';
    let started = false;
    fifo.on('data', (d: string | Buffer) => {
      got += String(d);
      if (started || !got.includes('start')) return;
      started = true;
      fifo.destroy();
      resume().catch((e: Error) => void finish(1, `cannot resume the VM of ${launch.id}: ${e.message}`, 'resume'));
    });
    return;
  }
  try {
    await resume();
  } catch (e) {
    return finish(1, `cannot resume the VM of ${launch.id}: ${(e as Error).message}`, launch.restore ? 'restore' : 'resume');
  }
  if (parentWatch) clearInterval(parentWatch);
  if (parentGone()) return finish(1, 'the daemon stopped while the VM was starting');
  report({ ok: true, qemuPid: qemu.pid! });
}

/** One command per connection: `stop MS`, `signal N`, `kill`; answered `ok` once done. */
function serveCommands(path: string, h: { stop(graceMs: number): Promise<void>; signal(n: number): void; waiters: Socket[] }): Server {
  rmSync(path, { force: true });
  const server = createServer((s) => {
    let line = '';
    s.setEncoding('utf8');
    s.on('error', () => undefined);
    s.on('data', (d: string) => {
      line += d;
      if (!line.includes('\n')) {
        if (line.length > 256) s.destroy();
        return;
      }
      const [verb, arg] = line.trim().split(/\s+/);
      const n = Number(arg);
      if (verb === 'stop' && Number.isInteger(n) && n >= 0) {
        h.waiters.push(s);
        void h.stop(n);
      } else if (verb === 'kill') {
        h.waiters.push(s);
        h.signal(constants.signals.SIGKILL);
      } else if (verb === 'signal' && Number.isInteger(n) && n > 0 && n < 65) {
        h.signal(n);
        s.end('ok\n');
      } else s.end('error: unknown command\n');
    });
  });
  server.listen(path);
  return server;
}

async function connectControl(path: string): Promise<Socket | undefined> {
  for (let i = 0; i < 50; i++) {
    const s = await new Promise<Socket | undefined>((resolve) => {
      const c = connect(path);
      c.once('connect', () => resolve(c));
      c.once('error', () => resolve(undefined));
    });
    if (s) return s;
    await sleep(20);
  }
  return undefined;
}

function releaseFifo(path: string): void {
  try {
    closeSync(openSync(path, constants_fs.O_WRONLY | constants_fs.O_NONBLOCK));
  } catch {
    /* nobody waits on it */
  }
}

/** where errors go without a log file: stderr, or the VM's supervisor.log for a spare (main.ts) */
let errorFd = 2;
export function logErrorsTo(fd: number): void {
  errorFd = fd;
}

function writeLog(launch: Launch, msg: string): void {
  const time = new Date().toISOString();
  const text = launch.log?.format === 'json' ? JSON.stringify({ level: 'error', msg, time }) + '\n' : `time=${JSON.stringify(time)} level=error msg=${JSON.stringify(msg)}\n`;
  try {
    if (launch.log?.file) appendFileSync(launch.log.file, text);
    else writeSync(errorFd, text);
  } catch {
    /* the exit status still says it */
  }
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

function lastLines(f: string, n: number): string {
  return safeRead(f).trim().split('\n').slice(-n).join(' | ');
}

