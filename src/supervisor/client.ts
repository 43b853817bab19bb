// How launchers (the QEMU provider, unik-runc's create) start a supervisor and talk to it.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { LaunchReport } from './supervise.js';
import type { Spare } from './spare.js';

export const SUPERVISOR_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export interface Started {
  pid: number;
  report: LaunchReport;
  /** resolves when the supervisor process ends (only while this process is its parent) */
  exited: Promise<void>;
}

/**
 * Starts the supervisor of DIR (launch.json written) in its own session, so it outlives its
 * launcher, and resolves with its first report: the VM is up, or why not. `stdio` is its fds
 * 0-2 (default: /dev/null in, DIR/supervisor.log out).
 */
export function startSupervisor(dir: string, opts: { stdio?: [number | 'ignore', number, number]; deadlineMs: number; logFile?: string; spare?: Spare }): Promise<Started> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    if (opts.spare) {
      // already started (spare.ts): it gets the folder, and answers on the same pipe
      child = opts.spare.child;
      if (opts.spare.pipe.destroyed) return reject(new Error('the spare supervisor ended before it was handed the VM'));
      (opts.spare.pipe as typeof opts.spare.pipe & { ref(): void }).ref();
      opts.spare.pipe.write(`${dir}\n`);
    } else {
      let logFd: number | undefined;
      let stdio: StdioOptions;
      if (opts.stdio) stdio = [...opts.stdio, 'pipe'];
      else {
        logFd = openSync(opts.logFile ?? `${dir}/supervisor.log`, 'a', 0o600);
        stdio = ['ignore', logFd, logFd, 'pipe'];
      }
      child = spawn(process.execPath, [SUPERVISOR_MAIN, dir], { stdio, detached: true, env: supervisorEnv() });
      if (logFd !== undefined) closeSync(logFd);
    }
    const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    let text = '';
    let settled = false;
    const timer = setTimeout(() => settle(undefined, new Error(`the VM did not come up within ${opts.deadlineMs / 1000} s`)), opts.deadlineMs);
    const settle = (report: LaunchReport | undefined, err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pipe.destroy();
      child.unref();
      if (report && child.pid) return resolve({ pid: child.pid, report, exited });
      // through the child, not its pid: an exited child's pid may already be another process's
      child.kill('SIGKILL');
      reject(err ?? new Error('the supervisor ended without a word'));
    };
    pipe.setEncoding('utf8');
    // one JSON line (not EOF: QEMU may hold an inherited copy of the pipe)
    const parse = (line: string) => {
      try {
        settle(JSON.parse(line) as LaunchReport);
      } catch {
        settle(undefined, new Error(`the supervisor said: ${line || 'nothing'}`));
      }
    };
    pipe.on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) parse(text.slice(0, text.indexOf('\n')).trim());
    });
    pipe.on('end', () => parse(text.trim()));
    // a pipe that breaks (a spare that died before it got the folder) ends the wait at once, not at the deadline
    pipe.on('close', () => parse(text.trim()));
    pipe.on('error', () => undefined);
    child.once('error', (e) => settle(undefined, e));
  });
}

/**
 * The supervisor's environment: the launcher's, less NODE_EXTRA_CA_CERTS. Node 20 reads and
 * parses that CA bundle at every start (50 ms here, on the path of every run); a supervisor
 * opens no TLS connection, and neither does the QEMU it starts.
 */
export function supervisorEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** Sends one command to a supervisor; resolves with its answer, or undefined if it cannot be reached. */
export function command(socket: string, line: string, deadlineMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let answer = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(answer || undefined);
    }, deadlineMs);
    s.setEncoding('utf8');
    s.once('connect', () => s.write(line + '\n'));
    s.on('data', (d: string) => (answer += d));
    s.once('close', () => {
      clearTimeout(timer);
      resolve(answer.trim() || (answer === '' ? 'closed' : undefined));
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}
