// One daemon per UNIK_HOME. Two daemons on one home would sweep each other's work, reconcile
// each other's VMs and race on the store. The lock is SQLite's own POSIX lock on a database of
// its own (daemon.lock), held for the process's life: the kernel drops it the moment the holder
// dies, SIGKILL included, so a restart right after a crash takes it at once, and a stale pid
// file never blocks anyone. POSIX locks are not inherited across fork, so the VMs a daemon
// starts (which outlive it) never hold it. Nothing but SQLite may open daemon.lock: closing any
// other descriptor of that file would drop the process's lock.
import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition } from '../model/errors.js';

export interface HomeLock {
  /** gives the lock back (closing the connection); idempotent */
  release(): void;
}

/** Takes the home's lock or throws FailedPrecondition HOME_LOCKED at once; writes nothing before it holds the lock. */
export function lockHome(home: string): HomeLock {
  mkdirSync(home, { recursive: true });
  const lockFile = join(home, 'daemon.lock');
  const pidFile = join(home, 'daemon.pid');
  // timeout 0: a busy lock is an answer, not something to wait for
  const db = new Database(lockFile, { timeout: 0 });
  try {
    // no -journal file beside the lock (a journal left by a SIGKILL would be rolled back, a write,
    // by the next opener); both pragmas only read
    db.pragma('journal_mode = MEMORY');
    db.pragma('locking_mode = EXCLUSIVE');
    // an exclusive transaction never committed: the lock without a byte written
    db.exec('BEGIN EXCLUSIVE');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
    throw locked(home, holderPid(pidFile));
  }
  // for the error of the next one who tries; written whole (rename) once the lock is ours
  const tmp = `${pidFile}.${process.pid}`;
  writeFileSync(tmp, `${process.pid}\n`);
  renameSync(tmp, pidFile);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      if (holderPid(pidFile) === process.pid) rmSync(pidFile, { force: true });
      db.close();
    },
  };
}

function locked(home: string, pid: number | undefined) {
  const who = pid === undefined ? 'another unik daemon' : pid === process.pid ? `this process (pid ${pid})` : `another unik daemon (pid ${pid})`;
  return failedPrecondition(
    'HOME_LOCKED',
    `${who} is using UNIK_HOME ${home}`,
    pid === process.pid
      ? 'close the first core on this home before opening another'
      : `stop it first${pid === undefined ? '' : ` (kill ${pid})`}, or give this daemon another UNIK_HOME`,
  );
}

/** The pid in daemon.pid if that process is alive; a pid file left by a killed daemon names nobody. */
function holderPid(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}
