// The daemon under test: a real `unik daemon` on one persistent home and port, which the crash
// harness SIGKILLs and starts again. Each life of the daemon gets its own HTTP connection pool,
// so no request rides on a connection to a dead process.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { ROOT } from '../integration/harness.js';

const CLI = join(ROOT, 'bin', 'unik');
const MARK = '--- crash harness: daemon start';

export interface Answer {
  status: number;
  text: string;
  json: any;
  /** ms from the request to its answer's headers */
  ms: number;
}

export class CrashDaemon {
  proc?: ChildProcess;
  private agent = new Agent({ keepAliveTimeout: 1000 });
  private starts = 0;
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly home: string,
    readonly port: number,
  ) {
    this.env = {
      ...process.env,
      UNIK_HOME: home,
      UNIK_BRIDGED: 'off',
      UNIK_KERNEL_CACHE: process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'),
      UNIK_HOST: `127.0.0.1:${port}`,
      UNIK_LOG_LEVEL: 'warn',
    };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  private get logFile(): string {
    return join(this.home, 'daemon.log');
  }

  /** Starts the daemon; resolves once it answers HTTP, or with why it did not within the deadline. */
  async start(deadlineMs = 30_000): Promise<{ ok: true; ms: number } | { ok: false; why: string }> {
    const t0 = Date.now();
    this.starts++;
    appendFileSync(this.logFile, `${MARK} #${this.starts} at ${new Date().toISOString()} ---\n`);
    const log = openSync(this.logFile, 'a');
    const proc = spawn(process.execPath, [CLI, 'daemon', '--port', String(this.port)], { env: this.env, stdio: ['ignore', log, log] });
    closeSync(log);
    this.proc = proc;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    this.agent = new Agent({ keepAliveTimeout: 1000 });
    while (Date.now() - t0 < deadlineMs) {
      if (proc.exitCode !== null || proc.signalCode !== null) return { ok: false, why: `the daemon exited (${proc.exitCode ?? proc.signalCode}) while starting` };
      try {
        const r = await request(`${this.url}/available_providers`, { dispatcher: this.agent, headersTimeout: 2000, bodyTimeout: 2000 });
        await r.body.text();
        if (r.statusCode === 200) return { ok: true, ms: Date.now() - t0 };
      } catch {
        /* not up yet */
      }
      await Promise.race([sleep(100), exited]);
    }
    return { ok: false, why: `the daemon did not answer within ${deadlineMs / 1000} s` };
  }

  /** SIGKILL: no shutdown handler runs. Resolves once the process is gone. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    await this.agent.destroy().catch(() => {});
  }

  /** An orderly stop (SIGTERM), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(timer);
    await this.agent.destroy().catch(() => {});
  }

  /** The daemon's output since its last start (the tail of it). */
  logTail(chars = 3000): string {
    let text = '';
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
    const at = text.lastIndexOf(MARK);
    return (at >= 0 ? text.slice(at) : text).slice(-chars);
  }

  async api(method: string, path: string, opts: { json?: unknown; body?: Buffer; contentType?: string; timeoutMs?: number } = {}): Promise<Answer> {
    const t0 = Date.now();
    const headers: Record<string, string> = {};
    let body: Buffer | string | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.body;
    }
    const timeout = opts.timeoutMs ?? 120_000;
    const r = await request(this.url + path, { method: method as 'GET', headers, body, dispatcher: this.agent, headersTimeout: timeout, bodyTimeout: timeout });
    const ms = Date.now() - t0;
    // the status is the answer; a body cut short by the kill does not undo it
    const text = await r.body.text().catch(() => '');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, text, json, ms };
  }

  /** A build upload: the multipart "tarfile" field, as old clients send it. */
  upload(name: string, tarGz: Buffer): Promise<Answer> {
    const boundary = `----unikcrash${Date.now().toString(16)}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="tarfile"; filename="app.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`),
      tarGz,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return this.api('POST', `/images/${encodeURIComponent(name)}/create`, { body, contentType: `multipart/form-data; boundary=${boundary}` });
  }
}
