import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = resolve(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'bin', 'unik');

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A real `unik daemon` in its own UNIK_HOME; kernels come from the shared cache. */
export class Daemon {
  proc?: ChildProcess;
  readonly home = mkdtempSync(join(tmpdir(), 'unik-it-'));
  readonly env: NodeJS.ProcessEnv;
  port = 0;

  constructor() {
    this.env = {
      ...process.env,
      UNIK_HOME: this.home,
      UNIK_KERNEL_CACHE: process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'),
      UNIK_HOST: '',
      UNIK_LOG_LEVEL: 'warn',
      // tests outside a network namespace of their own make no bridge on the host (network.test.ts makes one)
      UNIK_BRIDGED: 'off',
    };
  }

  /** how its processes start: [] here; `ip netns exec NS` for a daemon inside a namespace */
  protected prefix(): string[] {
    return [];
  }

  /** how the test reaches its API: plain fetch here; through a relay into the namespace there */
  protected fetch(url: string, init?: RequestInit): Promise<Response> {
    return fetch(url, init);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.env.UNIK_HOST = `127.0.0.1:${this.port}`;
    const log = openSync(join(this.home, 'daemon.log'), 'a');
    const [cmd, ...args] = [...this.prefix(), process.execPath, CLI, 'daemon', '--port', String(this.port)];
    this.proc = spawn(cmd!, args, { env: this.env, stdio: ['ignore', log, log] });
    for (let i = 0; i < 100; i++) {
      if (this.proc.exitCode !== null) throw new Error(`daemon exited: ${this.log()}`);
      if (await this.fetch(`${this.url}/available_providers`).then(() => true, () => false)) return;
      await sleep(100);
    }
    throw new Error(`daemon did not come up: ${this.log()}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }

  log(): string {
    try {
      return readFileSync(join(this.home, 'daemon.log'), 'utf8').slice(-4000);
    } catch {
      return '';
    }
  }

  /** Kills every VM this daemon's home started, then removes the home. */
  async destroy(): Promise<void> {
    await this.stop();
    await new Promise((r) => execFile('pkill', ['-KILL', '-f', join(this.home, 'instances')], r));
    rmSync(this.home, { recursive: true, force: true });
  }

  /** Runs the real CLI against this daemon. */
  cli(args: string[], opts: { timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const [cmd, ...argv] = [...this.prefix(), process.execPath, CLI, ...args];
      execFile(cmd!, argv, { env: this.env, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** POSTs a build upload (the multipart "tarfile") straight to the API, as old clients do. */
  async upload(name: string, body: Blob, query = ''): Promise<{ status: number; json: any }> {
    const form = new FormData();
    form.append('tarfile', body, 'app.tar.gz');
    const res = await this.fetch(`${this.url}/images/${name}/create${query}`, { method: 'POST', body: form });
    return { status: res.status, json: await res.json() };
  }

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
    const res = await this.fetch(this.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  }
}

/** GETs a URL until it answers 200 (or the deadline passes); returns the body. */
/**
 * One daemon for a whole test file: started before its first test (then `setup` runs),
 * destroyed after its last (after `teardown`), with its log printed if a test failed.
 */
export function suiteDaemon(hooks: { setup?: (d: Daemon) => Promise<void> | void; teardown?: () => void } = {}): Daemon {
  const d = new Daemon();
  before(async () => {
    await d.start();
    await hooks.setup?.(d);
  });
  after(async () => {
    if (process.exitCode) console.error(d.log());
    await d.destroy();
    hooks.teardown?.();
  });
  return d;
}

export async function httpUntil(url: string, deadlineMs = 60_000): Promise<string> {
  const until = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return await res.text();
      last = `status ${res.status}`;
    } catch (e) {
      last = String((e as Error).cause ?? e);
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer 200 within ${deadlineMs} ms (${last})`);
}

export async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2000) });
    return false;
  } catch (e) {
    const code = ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET';
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, deadlineMs = 60_000): Promise<T> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A .tar.gz of a directory's contents, as the CLI uploads it. */
export function tarOf(dir: string): Blob {
  return new Blob([execFileSync('tar', ['-czf', '-', '-C', dir, '.'], { maxBuffer: 1 << 28 })]);
}
