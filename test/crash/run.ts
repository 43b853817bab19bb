// The crash harness: "nothing is lost when the daemon dies". Each trial launches one operation
// through the real HTTP API of a real daemon on a persistent home, SIGKILLs the daemon after a
// random delay (uniform in [0, 1.2 × the operation's typical duration, measured once at
// start-up]), starts it again on the same home and port, and checks the invariants of
// invariants.ts. Supervisor trials SIGKILL the per-VM supervisor of a running instance instead
// (the daemon stays up). Used by `npm run crash` (main.ts) and by a short run in `npm test`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, freePort } from '../integration/harness.js';
import { Registry } from '../integration/registry.js';
import { CrashDaemon, type Answer } from './daemon.js';
import { COUNTERS, DEFAULT_GRACES, emptyLedger, settle, zeroCounters, type Counters, type Expectation, type Graces, type Ledger, type Violation } from './invariants.js';
import { alive, ancestors, listensOnLoopback, optionOf, qemusOf, tcpListeners } from './procs.js';

export const OPS = ['build', 'run', 'run-p', 'stop', 'start', 'rm', 'pull', 'volume', 'supervisor'] as const;
export type OpKind = (typeof OPS)[number];

/** what each kind does, for tables */
export const OP_DESCRIPTIONS: Record<OpKind, string> = {
  build: 'build (push examples/c-http)',
  run: 'run, no published port',
  'run-p': 'run -p 127.0.0.1:PORT:8080',
  stop: 'stop a running instance',
  start: 'start a stopped instance',
  rm: 'rm -f a running instance',
  pull: 'pull from a local docker-registry',
  volume: 'volume create (empty, 4 MB)',
  supervisor: 'SIGKILL the supervisor of a running VM',
};

export interface CrashOptions {
  trials: number;
  seed: number;
  log?: (line: string) => void;
  /** remove instances, volumes and all images but the base one every this many trials (default 5) */
  cleanEvery?: number;
  /** leave the home on disk at the end (its path is in the result) */
  keepHome?: boolean;
  graces?: Partial<Graces>;
}

export interface TrialRecord {
  n: number;
  op: OpKind;
  /** the image, instance or volume the operation is about */
  subject: string;
  /** the host port it publishes, if any */
  port?: number;
  typicalMs?: number;
  /** the delay drawn: the daemon is killed this long after the request goes out */
  delayMs?: number;
  /** when the SIGKILL was really sent (timers are late by a few ms) */
  killedAtMs?: number;
  /** the answer, if one came before the kill */
  answer?: { status: number; ms: number } | { error: string };
  acked: boolean;
  /** what the 2xx acknowledged */
  ackedWhat?: string;
  restartMs?: number;
  violations: Violation[];
  /** violations seen again that an earlier trial already counted */
  carried: number;
  /** why the trial could not be carried out as planned (counted in failedTrials) */
  failed?: string;
  /** why the daemon did not come back after the kill (counted in daemonFailedToRestart) */
  restartFailed?: string;
  /** the daemon's output, when it failed to restart or a violation was found */
  daemonLog?: string;
  ms: number;
}

export type PerOp = { trials: number; acked: number } & Counters;

export interface CrashResult {
  seed: number;
  trialsRequested: number;
  trialsRun: number;
  /** why the run stopped before all trials */
  aborted?: string;
  typicalMs: Partial<Record<OpKind, number>>;
  counters: Counters;
  perOp: Record<OpKind, PerOp>;
  trials: TrialRecord[];
  /** what went wrong around the trials: cleanup deletes refused, measurements retried */
  problems: string[];
  machine: { cores: number; cpu: string; memoryMb: number; qemu: string; accel: string; node: string; kernel: string };
  home: string;
  totalMs: number;
}

const BASE = 'crash-base';
const GUEST_PORT = 8080;
const APP = join(ROOT, 'examples', 'c-http');

class Abort extends Error {}

/** mulberry32: a small seeded generator, so a seed replays the same ops, delays and ports */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Prepared {
  subject: string;
  port?: number;
  launch(): Promise<Answer>;
  /** on a 2xx: records what it acknowledged; returns a description and what to expect */
  acked(a: Answer): { what: string; expect?: Expectation };
}

export function nonZero(c: Counters): Partial<Counters> {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v > 0)) as Partial<Counters>;
}

export async function runCrash(opts: CrashOptions): Promise<CrashResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const random = rng(opts.seed);
  const graces: Graces = { ...DEFAULT_GRACES, ...opts.graces };
  const cleanEvery = opts.cleanEvery ?? 5;
  const home = mkdtempSync('/tmp/unik-crash-');
  const daemon = new CrashDaemon(home, await freePort());
  const registry = new Registry();
  const ledger: Ledger = emptyLedger();
  const ports = new Set<number>();
  const reported = new Set<string>();
  const counters = zeroCounters();
  const perOp = Object.fromEntries(OPS.map((o) => [o, { trials: 0, acked: 0, ...zeroCounters() }])) as Record<OpKind, PerOp>;
  const trials: TrialRecord[] = [];
  const typicalMs: Partial<Record<OpKind, number>> = {};
  const problems: string[] = [];
  const tarGz = execFileSync('tar', ['-czf', '-', '-C', APP, '.'], { maxBuffer: 1 << 26 });
  let ref = '';
  let accel = '';
  let aborted: string | undefined;

  // ---- helpers around the API
  const expect2xx = (what: string, a: Answer): Answer => {
    if (a.status < 200 || a.status > 299) throw new Error(`${what} answered ${a.status}: ${a.text.slice(0, 400)}`);
    return a;
  };
  const stateOf = async (name: string): Promise<string | undefined> => {
    const r = await daemon.api('GET', `/instances/${name}`);
    return r.status === 200 ? (r.json?.State as string) : undefined;
  };
  const waitState = async (name: string, want: string[], ms = 60_000): Promise<string> => {
    const until = Date.now() + ms;
    let last: string | undefined;
    while (Date.now() < until) {
      last = await stateOf(name);
      if (last && want.includes(last)) return last;
      await sleep(100);
    }
    throw new Error(`instance ${name} did not become ${want.join('/')} within ${ms / 1000} s (it is ${last ?? 'absent'})`);
  };
  const runBody = (name: string, port?: number) => ({ ImageName: BASE, InstanceName: name, Ports: port ? [`127.0.0.1:${port}:${GUEST_PORT}`] : [] });
  const ackRun = (name: string, a: Answer) => {
    ledger.instances.set(name, (a.json?.Id as string) ?? '');
    if (!accel && a.json?.Accel) accel = a.json.Accel as string;
    return `${a.status}: instance ${name} (${String(a.json?.Id ?? '?').slice(0, 12)}, ${a.json?.State ?? '?'})`;
  };
  /** a running instance, made before the timed operation (its run is acknowledged like any other) */
  const runReady = async (name: string, port?: number): Promise<string> => {
    if (port) ports.add(port);
    const a = expect2xx(`run ${name}`, await daemon.api('POST', '/instances/run', { json: runBody(name, port) }));
    ackRun(name, a);
    await waitState(name, ['running']);
    return a.json.Id as string;
  };
  /** a stopped VM's forward may take a moment to close; the start is about crashes, not that */
  const portReleased = async (port: number, ms = 5000) => {
    const until = Date.now() + ms;
    while (Date.now() < until && tcpListeners().some((l) => l.port === port && listensOnLoopback(l))) await sleep(50);
  };
  const maybePort = async () => (random() < 0.5 ? freePort() : undefined);
  /**
   * Waits until the daemon has no snapshot template booting (a build, a pull or a first run
   * starts one in the background), so that a kill hits the operation under test and what it
   * starts, not what an earlier one left running.
   */
  const waitIdle = async (ms = 30_000) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const pid = daemon.pid;
      const busy = qemusOf(home).some((q) => optionOf(q.argv, '-name')?.startsWith('unik-template-') && pid !== undefined && ancestors(q.pid).includes(pid));
      if (!busy) return;
      await sleep(100);
    }
  };

  async function prepare(op: Exclude<OpKind, 'supervisor'>, n: number | string): Promise<Prepared> {
    switch (op) {
      case 'build': {
        const name = `b${n}`;
        return {
          subject: name,
          launch: () => daemon.upload(name, tarGz),
          acked: (a) => {
            ledger.images.set(name, (a.json?.Id as string) ?? '');
            return { what: `${a.status}: image ${name} (${String(a.json?.Id ?? '?').slice(0, 12)})` };
          },
        };
      }
      case 'run':
      case 'run-p': {
        const name = `r${n}`;
        const port = op === 'run-p' ? await freePort() : undefined;
        if (port) ports.add(port);
        return { subject: name, port, launch: () => daemon.api('POST', '/instances/run', { json: runBody(name, port) }), acked: (a) => ({ what: ackRun(name, a) }) };
      }
      case 'stop': {
        const name = `s${n}`;
        const port = await maybePort();
        await runReady(name, port);
        return { subject: name, port, launch: () => daemon.api('POST', `/instances/${name}/stop`), acked: (a) => ({ what: `${a.status}: ${name} stopped`, expect: { kind: 'stopped', name } }) };
      }
      case 'start': {
        const name = `t${n}`;
        const port = await maybePort();
        await runReady(name, port);
        expect2xx(`stop ${name}`, await daemon.api('POST', `/instances/${name}/stop`));
        await waitState(name, ['stopped', 'error']);
        if (port) await portReleased(port);
        return { subject: name, port, launch: () => daemon.api('POST', `/instances/${name}/start`), acked: (a) => ({ what: `${a.status}: ${name} started`, expect: { kind: 'started', name } }) };
      }
      case 'rm': {
        const name = `d${n}`;
        const port = await maybePort();
        const id = await runReady(name, port);
        return {
          subject: name,
          port,
          launch: () => {
            // in flight, the removal may or may not happen: the instance need not be there any more
            ledger.instances.delete(name);
            return daemon.api('DELETE', `/instances/${name}?force=true`);
          },
          acked: (a) => {
            ledger.instances.delete(name);
            ledger.removed.set(name, id);
            return { what: `${a.status}: ${name} removed` };
          },
        };
      }
      case 'pull': {
        const name = `p${n}`;
        return {
          subject: name,
          launch: () => daemon.api('POST', `/images/pull/${name}?ref=${encodeURIComponent(ref)}`),
          acked: (a) => {
            ledger.images.set(name, (a.json?.Id as string) ?? '');
            return { what: `${a.status}: image ${name} (${String(a.json?.Id ?? '?').slice(0, 12)})` };
          },
        };
      }
      case 'volume': {
        const name = `v${n}`;
        return {
          subject: name,
          launch: () => daemon.api('POST', `/volumes/${name}?size=4`),
          acked: (a) => {
            ledger.volumes.set(name, (a.json?.Id as string) ?? '');
            return { what: `${a.status}: volume ${name} (${String(a.json?.Id ?? '?').slice(0, 12)})` };
          },
        };
      }
    }
  }

  /** starts the daemon; one failure is counted and retried once, a second ends the run */
  const restart = async (rec?: TrialRecord): Promise<number> => {
    const first = await daemon.start(30_000);
    if (first.ok) return first.ms;
    counters.daemonFailedToRestart++;
    if (rec) {
      perOp[rec.op].daemonFailedToRestart++;
      rec.restartFailed = first.why;
      rec.daemonLog = daemon.logTail();
    }
    log(`daemon failed to restart: ${first.why}\n${daemon.logTail(1500)}`);
    await daemon.kill();
    const second = await daemon.start(30_000);
    if (second.ok) return second.ms;
    throw new Abort(`the daemon does not start on its home any more: ${second.why}\n${daemon.logTail()}`);
  };

  const count = (rec: TrialRecord, found: Violation[]) => {
    for (const v of found) {
      if (reported.has(v.key)) {
        rec.carried++;
        continue;
      }
      reported.add(v.key);
      rec.violations.push(v);
      counters[v.counter]++;
      perOp[rec.op][v.counter]++;
    }
  };

  const fail = (rec: TrialRecord, why: string) => {
    rec.failed = rec.failed ? `${rec.failed}; ${why}` : why;
    counters.failedTrials++;
    perOp[rec.op].failedTrials++;
  };

  /** the invariants, once the daemon has had its chance to settle */
  const check = async (rec: TrialRecord, expect: Expectation[]) => {
    try {
      count(rec, await settle({ home, daemon, ledger, expect, ports }, graces));
    } catch (e) {
      fail(rec, `checking failed: ${(e as Error).message}`);
    }
    if (rec.violations.length || rec.failed) rec.daemonLog ??= daemon.logTail();
  };

  async function supervisorTrial(rec: TrialRecord): Promise<void> {
    const name = `k${rec.n}`;
    rec.subject = name;
    const port = await maybePort();
    if (port) rec.port = port;
    const id = await runReady(name, port);
    const file = join(home, 'instances', id, 'supervisor.json');
    const until = Date.now() + 2000;
    while (!existsSync(file) && Date.now() < until) await sleep(100);
    if (!existsSync(file)) {
      fail(rec, `no ${file.slice(home.length + 1)} for the running instance ${name}: the per-VM supervisor is not in this build`);
      return;
    }
    let sup: { pid?: number; qemuPid?: number };
    try {
      sup = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      fail(rec, `supervisor.json of ${name} is not JSON: ${(e as Error).message}`);
      return;
    }
    if (!sup.pid || !alive(sup.pid)) {
      fail(rec, `the supervisor of ${name} (pid ${sup.pid}, from supervisor.json) is not alive while the instance runs`);
      return;
    }
    await waitIdle();
    process.kill(sup.pid, 'SIGKILL');
    rec.ackedWhat = `SIGKILL to supervisor pid ${sup.pid} (QEMU pid ${sup.qemuPid ?? '?'})`;
    await sleep(3000);
    await check(rec, [{ kind: 'supervisorKilled', name, id, supervisorPid: sup.pid, ...(sup.qemuPid ? { qemuPid: sup.qemuPid } : {}) }]);
  }

  async function crashTrial(rec: TrialRecord, op: Exclude<OpKind, 'supervisor'>): Promise<void> {
    const p = await prepare(op, rec.n);
    rec.subject = p.subject;
    if (p.port) rec.port = p.port;
    const typical = typicalMs[op] ?? 100;
    rec.typicalMs = typical;
    rec.delayMs = Math.round(random() * 1.2 * typical);
    await waitIdle();
    let answer: Answer | Error | undefined;
    const sent = Date.now();
    const inFlight = p.launch().then(
      (a) => void (answer = a),
      (e: Error) => void (answer = e),
    );
    await sleep(rec.delayMs);
    rec.killedAtMs = Date.now() - sent;
    await daemon.kill();
    await Promise.race([inFlight, sleep(10_000)]);
    const expect: Expectation[] = [];
    if (answer instanceof Error) rec.answer = { error: String((answer as Error & { code?: string }).code ?? answer.message) };
    else if (answer) {
      rec.answer = { status: answer.status, ms: answer.ms };
      if (answer.status >= 200 && answer.status <= 299) {
        rec.acked = true;
        perOp[op].acked++;
        const a = p.acked(answer);
        rec.ackedWhat = a.what;
        if (a.expect) expect.push(a.expect);
      } else {
        rec.ackedWhat = `refused before the kill: ${answer.status} ${answer.text.slice(0, 200)}`;
      }
    } else rec.answer = { error: `no answer ${Date.now() - sent} ms after the kill` };
    rec.restartMs = await restart(rec);
    await check(rec, expect);
  }

  /** removes what trials made, through the API; the base image stays */
  async function cleanup(): Promise<void> {
    const problem = (what: string, a: Answer) => {
      if (a.status >= 200 && a.status <= 299) return false;
      problems.push(`${what} answered ${a.status}: ${a.text.slice(0, 200)}`);
      return true;
    };
    const instances = ((await daemon.api('GET', '/instances')).json ?? []) as { Id: string; Name: string }[];
    for (const i of instances) {
      if (problem(`DELETE /instances/${i.Name}`, await daemon.api('DELETE', `/instances/${i.Id}?force=true`))) continue;
      ledger.instances.delete(i.Name);
      ledger.removed.set(i.Name, i.Id);
    }
    const images = ((await daemon.api('GET', '/images')).json ?? []) as { Id: string; Name: string }[];
    for (const i of images.filter((x) => x.Name !== BASE)) if (!problem(`DELETE /images/${i.Name}`, await daemon.api('DELETE', `/images/${i.Id}?force=true`))) ledger.images.delete(i.Name);
    const volumes = ((await daemon.api('GET', '/volumes')).json ?? []) as { Id: string; Name: string }[];
    for (const v of volumes) if (!problem(`DELETE /volumes/${v.Name}`, await daemon.api('DELETE', `/volumes/${v.Id}?force=true`))) ledger.volumes.delete(v.Name);
    // QEMUs already counted as leaked go now, so they are not a load on later trials
    for (const q of qemusOf(home)) if (reported.has(`qemu:${q.pid}`)) killPid(q.pid);
    if (!images.some((i) => i.Name === BASE)) {
      problems.push(`the base image ${BASE} was gone and was built again`);
      await buildBase();
    }
  }

  async function buildBase(): Promise<void> {
    const a = expect2xx(`build ${BASE}`, await daemon.upload(BASE, tarGz));
    ledger.images.set(BASE, a.json.Id as string);
  }

  const newRecord = (n: number, op: OpKind): TrialRecord => ({ n, op, subject: '', acked: false, violations: [], carried: 0, ms: 0 });

  /** the daemon, every QEMU of the home (by pid), the registry, the home */
  const teardown = async () => {
    await daemon.stop().catch(() => {});
    for (const q of qemusOf(home)) killPid(q.pid);
    await registry.destroy().catch(() => {});
    if (!opts.keepHome) rmSync(home, { recursive: true, force: true });
  };
  // interrupted (Ctrl-C): the VMs are detached from the terminal, so they are ended here
  const interrupted = () => void teardown().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    // ---- set-up: daemon, registry, the base image (pushed once), typical durations
    const up = await daemon.start(30_000);
    if (!up.ok) throw new Abort(`the daemon did not start: ${up.why}\n${daemon.logTail()}`);
    await registry.start();
    ref = `${registry.host}/crash/c-http:v1`;
    await buildBase();
    expect2xx('hub push', await daemon.api('POST', `/images/push/${BASE}?ref=${encodeURIComponent(ref)}`));
    log(`home ${home}, daemon :${daemon.port}, registry ${registry.host}; measuring each operation once`);

    for (const [i, op] of OPS.entries()) {
      if (op === 'supervisor') continue;
      for (let attempt = 1; typicalMs[op] === undefined; attempt++) {
        // measured as trials see it: on a freshly started daemon
        await waitIdle();
        await daemon.kill();
        await restart();
        try {
          const p = await prepare(op, `m${i}${attempt > 1 ? `x${attempt}` : ''}`);
          const a = expect2xx(`${op} (measuring)`, await p.launch());
          p.acked(a);
          typicalMs[op] = Math.max(5, a.ms);
        } catch (e) {
          problems.push(`measuring ${op}, attempt ${attempt}: ${(e as Error).message}`);
          if (attempt === 3) throw new Abort(`${op} failed 3 times on a daemon that was not disturbed: ${(e as Error).message}`);
        }
      }
    }
    log(`typical durations (ms): ${Object.entries(typicalMs).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    await cleanup();

    // ---- the trials: the kinds in turn, in a shuffled order per round
    let order: OpKind[] = [];
    for (let n = 1; n <= opts.trials; n++) {
      if (!order.length) {
        order = [...OPS];
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
      }
      const op = order.shift()!;
      const rec = newRecord(n, op);
      trials.push(rec);
      perOp[op].trials++;
      const started = Date.now();
      try {
        if (!daemon.running) {
          fail(rec, `the daemon had died before the trial:\n${daemon.logTail(1500)}`);
          await restart(rec);
        }
        if (op === 'supervisor') await supervisorTrial(rec);
        else await crashTrial(rec, op);
      } catch (e) {
        if (e instanceof Abort) throw e;
        fail(rec, (e as Error).message);
        rec.daemonLog ??= daemon.logTail();
        if (!daemon.running) await restart(rec);
      }
      rec.ms = Date.now() - started;
      log(trialLine(rec));
      if (n % cleanEvery === 0 || n === opts.trials) {
        try {
          await cleanup();
        } catch (e) {
          problems.push(`cleanup after trial ${n}: ${(e as Error).message}`);
          if (!daemon.running) await restart();
        }
      }
    }
  } catch (e) {
    aborted = e instanceof Abort ? e.message : `${(e as Error).stack ?? e}`;
    log(`aborted: ${aborted}`);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await teardown();
  }

  return {
    seed: opts.seed,
    trialsRequested: opts.trials,
    trialsRun: trials.length,
    ...(aborted ? { aborted } : {}),
    typicalMs,
    counters,
    perOp,
    trials,
    problems,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '', memoryMb: Math.round(totalmem() / 2 ** 20), qemu: qemuVersion(), accel, node: process.version, kernel: release() },
    home,
    totalMs: Date.now() - t0,
  };
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function qemuVersion(): string {
  try {
    return execFileSync(process.env.UNIK_QEMU || 'qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

export function trialLine(r: TrialRecord): string {
  const ans = !r.answer ? '' : 'status' in r.answer ? `answer ${r.answer.status} after ${r.answer.ms} ms` : `no answer (${r.answer.error})`;
  const head = `trial ${r.n} ${r.op} ${r.subject}${r.port ? ` :${r.port}` : ''}${r.killedAtMs !== undefined ? `, killed at ${r.killedAtMs} ms (typical ${r.typicalMs})` : ''}${ans ? `, ${ans}` : ''}${r.acked ? ' (acked)' : ''}`;
  const problems = [r.restartFailed ? `DAEMON DID NOT RESTART: ${r.restartFailed}` : '', r.failed ? `FAILED: ${r.failed.split('\n')[0]}` : '', r.violations.length ? `${r.violations.length} violation(s)` : ''].filter(Boolean);
  const tail = ` ${problems.join('; ') || 'ok'}`;
  return head + ':' + tail + (r.carried ? ` (+${r.carried} seen before)` : '') + r.violations.map((v) => `\n    ${v.counter}: ${v.detail}`).join('');
}

/** The summary table: one row per operation kind, a column per counter. */
export function summaryTable(r: CrashResult): string {
  const head = ['op', 'trials', 'acked', ...COUNTERS];
  const rows = OPS.map((o) => [o, String(r.perOp[o].trials), o === 'supervisor' ? '-' : String(r.perOp[o].acked), ...COUNTERS.map((c) => String(r.perOp[o][c]))]);
  rows.push(['total', String(r.trialsRun), String(OPS.reduce((s, o) => s + r.perOp[o].acked, 0)), ...COUNTERS.map((c) => String(r.counters[c]))]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
