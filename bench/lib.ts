// Shared by the bench scripts: a real daemon in a temporary UNIK_HOME, and summary statistics.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, tarOf } from '../test/integration/harness.js';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface BuiltImage {
  Id: string;
  SizeBytes: number;
  RunSpec: { DefaultInstanceMemory: number };
}

export interface BenchDaemon {
  home: string;
  api: string;
  /** builds examples/<example> (or a directory) into image `name`; returns the image JSON */
  build(name: string, dir: string, query?: string): Promise<BuiltImage>;
  stop(): Promise<void>;
}

/** `unik daemon` on a free port, its state in a fresh UNIK_HOME (kernels from the shared cache). */
export async function startDaemon(name: string): Promise<BenchDaemon> {
  const home = mkdtempSync(join(tmpdir(), `unik-bench-${name}-`));
  const env = { ...process.env, UNIK_HOME: home, UNIK_KERNEL_CACHE: process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'), UNIK_LOG_LEVEL: 'warn' };
  const port = await freePort();
  const log = openSync(join(home, 'daemon.log'), 'a');
  const daemon = spawn(process.execPath, [join(ROOT, 'bin/unik'), 'daemon', '--port', String(port)], { env, stdio: ['ignore', log, log] });
  const api = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await fetch(`${api}/available_providers`).then(() => true, () => false)); i++) await sleep(100);
  return {
    home,
    api,
    async build(name, dir, query = '') {
      const form = new FormData();
      form.append('tarfile', tarOf(dir.startsWith('/') ? dir : join(ROOT, 'examples', dir)), 'app.tgz');
      const r = await fetch(`${api}/images/${name}/create${query}`, { method: 'POST', body: form });
      if (r.status !== 201) throw new Error(`build ${name}: ${await r.text()}`);
      return (await r.json()) as BuiltImage;
    },
    async stop() {
      daemon.kill('SIGTERM');
      await sleep(300);
      try {
        execFileSync('pkill', ['-KILL', '-f', join(home, 'instances')]);
      } catch {
        /* no VM left */
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s.at(-1)!, runs: s.length };
}
