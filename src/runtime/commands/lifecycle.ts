// start, kill, delete: for a unikernel container through its monitor; for any other id, runc.

import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseSignal, signalName } from '../args.js';
import { RuntimeError, type Ctx } from '../context.js';
import { delegate } from '../delegate.js';
import { unplugTap } from '../netns.js';
import { FILES, StateDir, processAlive, validateId, type ContainerState } from '../state.js';

const START_DEADLINE_MS = 30_000;

/** The container's state directory, or undefined when the id is runc's. */
export function ours(ctx: Ctx): { st: StateDir; s: ContainerState } | undefined {
  const id = validateId(ctx.args.operands[0]);
  const st = new StateDir(ctx.root, id);
  if (!st.exists()) return undefined;
  try {
    return { st, s: st.read() };
  } catch {
    // a create that died half-way: only delete can help
    return { st, s: { id, bundle: '', rootfs: '', created: new Date(0).toISOString(), pid: 0, pidStart: '', annotations: {} } };
  }
}

export async function start(ctx: Ctx): Promise<number> {
  const c = ours(ctx);
  if (!c) return delegate(ctx.argv);
  const { st, s } = c;
  const status = st.status(s);
  if (status === 'stopped') throw new RuntimeError(`cannot start a container that has stopped`);
  if (status === 'running') throw new RuntimeError(`cannot start an already running container`);
  // Tell the monitor through the FIFO; it may not have opened it for reading yet (ENXIO).
  const until = Date.now() + START_DEADLINE_MS;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(st.file(FILES.fifo), constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > until || !processAlive(s.pid, s.pidStart))
        throw new RuntimeError(`cannot start container ${s.id}: its monitor is not waiting (${(e as Error).message})`);
      await sleep(10);
    }
  }
  writeSync(fd, 'start\n');
  closeSync(fd);
  while (st.supervisor()?.state !== 'running') {
    if (!processAlive(s.pid, s.pidStart)) throw new RuntimeError(`container ${s.id} stopped while starting: ${lastError(st)}`);
    if (Date.now() > until) throw new RuntimeError(`container ${s.id} did not start within ${START_DEADLINE_MS / 1000} s`);
    await sleep(5);
  }
  return 0;
}

export async function kill(ctx: Ctx): Promise<number> {
  const c = ours(ctx);
  if (!c) return delegate(ctx.argv);
  const { st, s } = c;
  const sig = parseSignal(ctx.args.operands[1]);
  // The shim sends `kill --all ID 9` after every exit, to reap strays in the container's pid
  // namespace; runc answers that with success on a stopped container, and so do we.
  if (st.status(s) === 'stopped' && ctx.args.flags.all) return 0;
  // the shim treats "container not running" as "already finished" (not an error for it)
  if (st.status(s) === 'stopped') throw new RuntimeError(`container not running: ${s.id} has already exited${exitNote(st)}`);
  try {
    process.kill(s.pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') throw new RuntimeError(`container not running: ${s.id}`);
    throw e;
  }
  ctx.log.debug(`${s.id}: sent ${signalName(sig)} to the monitor (pid ${s.pid})`);
  return 0;
}

export async function del(ctx: Ctx): Promise<number> {
  const c = ours(ctx);
  if (!c) return delegate(ctx.argv);
  const { st, s } = c;
  const status = st.status(s);
  if (status === 'running' && !ctx.args.flags.force) throw new RuntimeError(`cannot delete container ${s.id} that is not stopped: running`);
  // the supervisor: as the state says, or as it recorded itself (a create killed before it wrote the pid)
  const sup = st.supervisor();
  const pid = s.pid || sup?.pid || 0;
  const pidStart = s.pid ? s.pidStart : (sup?.pidStart ?? '');
  if (pid && processAlive(pid, pidStart)) {
    // a created container is deleted as runc does: its process is killed (QEMU follows it)
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    const until = Date.now() + 10_000;
    while (processAlive(pid, pidStart) && Date.now() < until) await sleep(10);
  }
  await killQemu(st, s.id);
  if (s.net) unplugTap(s.net.netns, s.net.ifname);
  st.remove();
  return 0;
}

/** QEMU dies with its supervisor (it is bound to it); this makes sure of it before the files go. */
async function killQemu(st: StateDir, id: string): Promise<void> {
  const sup = st.supervisor();
  const pid = sup?.qemuPid ?? 0;
  // the very process the supervisor started: its start time, or (older records) its command line
  const isOurs = () => {
    try {
      if (sup?.qemuStart) return processAlive(pid, sup.qemuStart);
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`unik-${id}\0`) && processAlive(pid, '');
    } catch {
      return false;
    }
  };
  if (!pid || !isOurs()) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const until = Date.now() + 5000;
  while (isOurs() && Date.now() < until) await sleep(10);
}

function exitNote(st: StateDir): string {
  const code = st.exitCode();
  return code === null ? '' : ` (exit status ${code})`;
}

function lastError(st: StateDir): string {
  try {
    return readFileSync(st.file(FILES.qemuErr), 'utf8').trim().split('\n').slice(-3).join(' | ') || 'no message from QEMU';
  } catch {
    return 'no message';
  }
}
