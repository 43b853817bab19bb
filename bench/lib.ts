// Shared by the bench scripts: a real daemon in a temporary UNIK_HOME, timing and summary
// statistics, the static Go binary the references run, host RSS, the smoke switch, and the
// per-module result files that bench/report.ts gathers.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, tarOf } from '../test/integration/harness.js';

export const ROOT = resolve(import.meta.dirname, '../..');
/** `BENCH_SMOKE=1` or `--smoke`: one run each, tiny counts, slow references only when cached. */
export const SMOKE = process.env.BENCH_SMOKE === '1' || process.argv.includes('--smoke');
/** where results go: bench/results, or bench/results/smoke for a smoke run (never mixed up) */
export const RESULTS = join(ROOT, 'bench/results', SMOKE ? 'smoke' : '');
/** repeated runs for a median (BENCH_RUNS, default 5; 1 in smoke mode) */
export const RUNS = SMOKE ? 1 : Number(process.env.BENCH_RUNS) || 5;
/** where the references cache what they build (never rebuilt): $UNIK_BENCH_CACHE or ~/.unik/bench */
export const BENCH_CACHE = process.env.UNIK_BENCH_CACHE || join(homedir(), '.unik', 'bench');

export interface BuiltImage {
  Id: string;
  SizeBytes: number;
  RunSpec: { DefaultInstanceMemory: number };
}

export interface BenchDaemon {
  home: string;
  api: string;
  /** the daemon's process */
  pid: number;
  /** false when started with UNIK_SNAPSHOTS=0: no boot-snapshot templates, every run a cold boot */
  snapshots: boolean;
  /** builds examples/<example> (or a directory) into image `name`; returns the image JSON */
  build(name: string, dir: string, query?: string): Promise<BuiltImage>;
  stop(): Promise<void>;
}

/** `unik daemon` on a free port, its state in a fresh UNIK_HOME (kernels from the shared cache). */
export async function startDaemon(name: string, extraEnv: Record<string, string> = {}): Promise<BenchDaemon> {
  const home = mkdtempSync(join(tmpdir(), `unik-bench-${name}-`));
  const env = { ...process.env, UNIK_BRIDGED: 'off', ...extraEnv, UNIK_HOME: home, UNIK_KERNEL_CACHE: process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'), UNIK_LOG_LEVEL: 'warn' };
  const port = await freePort();
  const log = openSync(join(home, 'daemon.log'), 'a');
  const daemon = spawn(process.execPath, [join(ROOT, 'bin/unik'), 'daemon', '--port', String(port)], { env, stdio: ['ignore', log, log] });
  const api = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await fetch(`${api}/available_providers`).then(() => true, () => false)); i++) await sleep(100);
  return {
    home,
    api,
    pid: daemon.pid ?? 0,
    snapshots: (extraEnv.UNIK_SNAPSHOTS ?? process.env.UNIK_SNAPSHOTS) !== '0',
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

/** Milliseconds an async call takes, and its value. */
export async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [performance.now() - t0, v];
}

/**
 * Polls `url` until it answers 200 (true) or the deadline passes or `gaveUp()` says the server
 * died (false). Short attempts: a connection opened before the guest network is up waits for
 * slirp to retransmit its SYN (about a second), which is not boot time.
 */
export async function waitOk(url: string, deadlineMs = 120_000, gaveUp: () => boolean | Promise<boolean> = () => false): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  let checked = Date.now();
  while (Date.now() < until) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(250) });
      if (r.status === 200) {
        await r.arrayBuffer();
        return true;
      }
    } catch {
      /* not yet */
    }
    // asking whether the server died costs (e.g. an API call): at most every 200 ms
    if (Date.now() - checked >= 200) {
      checked = Date.now();
      if (await gaveUp()) return false;
    }
    await sleep(5);
  }
  return false;
}

/** As waitOk, but throws when the server never answers. */
export async function firstOk(url: string, deadlineMs = 120_000): Promise<void> {
  if (!(await waitOk(url, deadlineMs))) throw new Error(`${url} never answered`);
}

/** The resident set of a process in kB (0 when it is gone). */
export function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * examples/go-http as the static binary unik puts in its image (`CGO_ENABLED=0 go build
 * -trimpath -ldflags=-s -w`, as src/compilers/go.ts), written to `out`: what every reference runs.
 */
export function buildGoBinary(out: string, gocache?: string): void {
  execFileSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], { cwd: join(ROOT, 'examples/go-http'), env: { ...process.env, CGO_ENABLED: '0', ...(gocache ? { GOCACHE: gocache } : {}) }, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * Smallest memory (MB, a multiple of `step`) at which `answers(mb)` holds, by bisection between
 * `low` (assumed to fail) and `high` (known to work), with at most `maxProbes` probes.
 */
export async function smallestMemory(answers: (mb: number) => Promise<boolean>, low: number, high: number, step = 8, maxProbes = 6): Promise<{ mb: number; probes: { mb: number; ok: boolean }[] }> {
  let ok = high;
  let bad = low;
  const probes: { mb: number; ok: boolean }[] = [];
  while (ok - bad > step && probes.length < maxProbes) {
    const mid = Math.round((ok + bad) / 2 / step) * step;
    if (mid <= bad || mid >= ok) break;
    const good = await answers(mid);
    probes.push({ mb: mid, ok: good });
    if (good) ok = mid;
    else bad = mid;
  }
  return { mb: ok, probes };
}

export interface HostInfo {
  host: string;
  cpuModel: string;
  cores: number;
  qemu: string;
  kernel: string;
}

export function hostInfo(): HostInfo {
  let qemu = '?';
  try {
    qemu = /version ([\d.]+[^\s]*)/.exec(execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    /* no QEMU */
  }
  return { host: hostname(), cpuModel: cpus()[0]?.model.trim() ?? '?', cores: cpus().length, qemu, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() };
}

/** bench/results/<date>-<host>-<module>.json: one module's raw figures, gathered by report.ts */
export function writeModuleResult(module: string, result: Record<string, unknown>): string {
  mkdirSync(RESULTS, { recursive: true });
  const date = new Date().toISOString();
  const out = join(RESULTS, `${date.slice(0, 10)}-${hostname()}-${module}.json`);
  writeFileSync(out, JSON.stringify({ module, date, host: hostname(), smoke: SMOKE, ...result }, null, 2) + '\n');
  return out;
}

/** Replaces the README's `<!-- NAME:begin -->…<!-- NAME:end -->` block with `body` (full runs only): the figures there are the bench's. */
export function writeReadmeBlock(name: string, body: string): void {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const readme = join(ROOT, 'README.md');
  if (SMOKE || !existsSync(readme)) return;
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) writeFileSync(readme, `${text.slice(0, a)}${begin}\n${body}\n${end}${text.slice(b + end.length)}`);
}

/**
 * After every build the daemon boots the new image once in the background for its boot-snapshot
 * template (core/images.ts commit → QemuProvider.prepare → SnapshotTemplates.ensure, after the
 * accelerator probe). Waits until that is over — the template on disk
 * (images/<id>/snapshots/<memory>m-<accel>/{ram,state}), or its work folder gone without one
 * (not made) — so that nothing timed next competes with it. Returns the ms waited; 0 at once on
 * a daemon with snapshots off, which makes no template.
 */
export async function waitForTemplate(d: BenchDaemon, image: BuiltImage, deadlineMs = 180_000): Promise<number> {
  if (!d.snapshots) return 0;
  const dir = join(d.home, 'images', image.Id, 'snapshots');
  const t0 = Date.now();
  let sawWork = false;
  while (Date.now() - t0 < deadlineMs) {
    const entries = existsSync(dir) ? readdirSync(dir) : [];
    const done = entries.some((e) => new RegExp(`^${image.RunSpec.DefaultInstanceMemory}m-[a-z]+$`).test(e) && existsSync(join(dir, e, 'state')) && existsSync(join(dir, e, 'ram')));
    const working = entries.some((e) => e.includes('.tmp-'));
    if (done) return Date.now() - t0;
    if (working) sawWork = true;
    // gone without a template (it failed), or never begun (e.g. no QEMU): after the probe's 8 s and a margin
    else if (sawWork || Date.now() - t0 > 30_000) return Date.now() - t0;
    await sleep(100);
  }
  return Date.now() - t0;
}

/**
 * One aim as a module measured it, carried in its result file's `aims` array; bench/report.ts
 * turns them into the README's aims table (see bench/README.md, "Aims"). `id` matches the table's
 * rows (e.g. `api-run`); `met` is null when the aim has no target to meet (a figure to report).
 */
export interface Aim {
  id: string;
  /** what is aimed at, in words: "`run` → first HTTP 200 of go-http, through the API" */
  aim: string;
  /** the target in words: "≤ 0.25 s", "≤ ½ of podman's" */
  target: string;
  /** the measured figure (a median unless `detail` says otherwise); null if it could not be measured */
  value: number | null;
  unit: string;
  met: boolean | null;
  /** for a ratio or a figure beside a reference: what it compares, e.g. "unik restore ÷ conventional VM restore, medians" */
  compares?: string;
  detail?: string;
}

/** An aim met when `value` ≤ `limit` (null value: not measured, met null). */
export function aimAtMost(a: Omit<Aim, 'met' | 'target'> & { target?: string }, limit: number): Aim {
  return { target: `≤ ${limit} ${a.unit}`.trim(), ...a, met: a.value === null ? null : a.value <= limit };
}
