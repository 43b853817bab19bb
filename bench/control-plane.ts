// `npm run bench:control-plane`: the daemon's control plane at scale. Two daemons side by side:
// one with an empty store, one with 1,000 images and 1,000 stopped instances in its store plus a
// few running go-http instances.
//   latency: GET /instances and GET /images (2016), GET /v1.43/containers/json?all=1 and
//            GET /v1.43/images/json (Docker), p50/p99 of sequential requests (one in flight, so
//            a sample is the server's time for one call, not time spent queued behind others),
//            interleaved call by call between the two daemons so machine noise hits both.
//   watcher: the daemon's CPU time per second while idle (its threads' /proc schedstat),
//            with 1,000 stopped, then a few and then 10 running instances, measured in the same
//            window on the empty daemon; the difference per instance is the watcher's cost. The
//            supervisors' CPU (one process per running VM) is reported beside it.
// Booting 1,000 VMs is out of reach (TCG), so the store is filled as the daemon would have it:
// one real go-http image and one real instance (run, answered, stopped) are copied 999 times
// each — new ids and names, the image folder hard-linked (its manifest.json rewritten), the
// instance folder copied — through the daemon's own Store, so the daemon lists them exactly as
// real ones.
// BENCH_CP_COUNT (default 1000), BENCH_CP_RUNNING (default 3,10), BENCH_CP_SAMPLES (default 200),
// BENCH_CP_IDLE_SECONDS (default 20); smoke: 50 records, 1 running, 20 samples, 3 s.
import { cpSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { Store } from '../src/store/db.js';
import { newId } from '../src/core/ids.js';
import { STATUS_FILE } from '../src/supervisor/launch.js';
import type { ImageManifest, InstanceRecord } from '../src/model/types.js';
import { firstOk, hostInfo, SMOKE, startDaemon, writeModuleResult, writeReadmeBlock, type BenchDaemon } from './lib.js';

const COUNT = Number(process.env.BENCH_CP_COUNT) || (SMOKE ? 50 : 1000);
const RUNNING = (process.env.BENCH_CP_RUNNING ?? (SMOKE ? '1' : '3,10')).split(',').map(Number).filter((n) => n > 0);
const SAMPLES = Number(process.env.BENCH_CP_SAMPLES) || (SMOKE ? 20 : 200);
const IDLE_S = Number(process.env.BENCH_CP_IDLE_SECONDS) || (SMOKE ? 3 : 20);
const CALLS = ['/instances', '/images', '/v1.43/containers/json?all=1', '/v1.43/images/json'];

// ---- the daemon's process and its CPU time

/** The pid of `unik daemon --port PORT` (startDaemon does not say it). */
function daemonPid(api: string): number {
  const port = new URL(api).port;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv.includes('daemon') && argv[argv.indexOf('--port') + 1] === port) return Number(e);
    } catch {
      /* gone meanwhile */
    }
  }
  throw new Error(`no daemon process listens on ${api}`);
}

/**
 * CPU time of a process, in ms (0 when it is gone): the sum of its threads' on-CPU time from
 * /proc/PID/task/TID/schedstat (nanoseconds; utime+stime count 10 ms ticks, too coarse for an
 * idle daemon over 20 s).
 */
function cpuMs(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* the thread ended */
      }
    }
  } catch {
    return 0;
  }
  return ns / 1e6;
}

/** The supervisors' pids of a home's running instances (supervisor.json in each instance folder). */
function supervisorPids(home: string): number[] {
  const pids: number[] = [];
  for (const id of readdirSync(join(home, 'instances'))) {
    try {
      const s = JSON.parse(readFileSync(join(home, 'instances', id, STATUS_FILE), 'utf8')) as { pid: number; state: string };
      if (s.state !== 'exited' && s.pid > 0) pids.push(s.pid);
    } catch {
      /* no supervisor */
    }
  }
  return pids;
}

interface Idle {
  label: string;
  stopped: number;
  running: number;
  seconds: number;
  /**
   * CPU ms per wall second of the daemon with the records and of the empty one in the same
   * window, each the median over SLICES equal parts of the window (a GC or a neighbour's burst
   * in one part does not make the figure); the supervisors' over the whole window (their own
   * work comes in bursts a median of parts would miss)
   */
  daemonMsPerS: number;
  emptyDaemonMsPerS: number;
  supervisorsMsPerS: number;
}

const SLICES = 5;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function idleWindow(label: string, full: BenchDaemon, empty: BenchDaemon, stopped: number, running: number): Promise<Idle> {
  const fp = daemonPid(full.api);
  const ep = daemonPid(empty.api);
  const sups = supervisorPids(full.home);
  await sleep(SMOKE ? 1000 : 5000); // let what the last step started settle (new VMs' consoles, their first watcher rounds)
  const read = () => [performance.now(), cpuMs(fp), cpuMs(ep), sups.reduce((a, p) => a + cpuMs(p), 0)] as const;
  const rates: [number[], number[], number[]] = [[], [], []];
  let last = read();
  for (let k = 0; k < SLICES; k++) {
    await sleep((IDLE_S * 1000) / SLICES);
    const now = read();
    const s = (now[0] - last[0]) / 1000;
    for (let j = 0; j < 3; j++) rates[j]!.push((now[j + 1]! - last[j + 1]!) / s);
    last = now;
  }
  const r = { label, stopped, running, seconds: IDLE_S, daemonMsPerS: median(rates[0]), emptyDaemonMsPerS: median(rates[1]), supervisorsMsPerS: rates[2].reduce((a, b) => a + b, 0) / SLICES };
  console.error(`idle ${label}: daemon ${r.daemonMsPerS.toFixed(2)} CPU-ms/s (empty daemon ${r.emptyDaemonMsPerS.toFixed(2)}), supervisors ${r.supervisorsMsPerS.toFixed(2)}`);
  return r;
}

// ---- filling the store

/** A folder's tree hard-linked (files) into `to`, without half-written `.tmp-` entries. */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (/\.tmp-/.test(e.name)) continue;
    if (e.isDirectory()) linkTree(join(from, e.name), join(to, e.name));
    else if (e.isFile()) linkSync(join(from, e.name), join(to, e.name));
  }
}

/**
 * COUNT-1 copies of the real image and of the real stopped instance (so COUNT of each), through
 * the daemon's own Store (SQLite in WAL mode: the daemon reads on while this writes).
 */
function fillStore(home: string, imageId: string, instanceId: string): void {
  const store = new Store(join(home, 'state.db'));
  try {
    const img = store.listImages().find((i) => i.id === imageId)!;
    const inst = store.getInstance(instanceId)!;
    const t0 = Date.parse(inst.created);
    store.tx(() => {
      for (let n = 1; n < COUNT; n++) {
        const id = newId();
        const name = `${img.name}-copy-${String(n).padStart(4, '0')}`;
        const created = new Date(Date.parse(img.created) + n).toISOString();
        const manifest: ImageManifest = { ...img.manifest, id, name, created };
        const dir = join(home, 'images', id);
        linkTree(join(home, 'images', imageId), dir);
        // its own manifest (images.ts writes it so), not a link through to the original's
        const mf = join(dir, 'manifest.json');
        rmSync(mf, { force: true });
        writeFileSync(mf, JSON.stringify(manifest, null, 2) + '\n');
        store.insertImage({ ...img, id, name, created, manifest });

        const copy: InstanceRecord = {
          ...inst,
          id: newId(),
          name: `${inst.name}-copy-${String(n).padStart(4, '0')}`,
          imageId: id,
          created: new Date(t0 + n).toISOString(),
          spec: { ...inst.spec, ports: inst.spec.ports.map((p) => ({ ...p, hostPort: 20000 + n })) },
        };
        cpSync(join(home, 'instances', inst.id), join(home, 'instances', copy.id), { recursive: true });
        store.insertInstance(copy);
      }
    });
  } finally {
    store.close();
  }
}

// ---- latency

interface Latency {
  p50ms: number;
  p99ms: number;
  meanMs: number;
  samples: number;
  /** length of the answer's JSON array, and its size */
  items: number;
  bytes: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function timedGet(url: string): Promise<[number, Buffer]> {
  const t0 = performance.now();
  const r = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  const body = Buffer.from(await r.arrayBuffer());
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${body.toString().slice(0, 200)}`);
  return [ms, body];
}

async function latencies(daemons: BenchDaemon[]): Promise<Latency[][]> {
  const ms: number[][][] = CALLS.map(() => daemons.map(() => []));
  const last: Buffer[][] = CALLS.map(() => []);
  // one warm-up round (JIT, the connection), then SAMPLES rounds: call by call, daemon by daemon
  for (let round = -1; round < SAMPLES; round++)
    for (const [c, call] of CALLS.entries())
      for (const [d, daemon] of daemons.entries()) {
        const [t, body] = await timedGet(`${daemon.api}${call}`);
        if (round >= 0) ms[c]![d]!.push(t);
        last[c]![d] = body;
      }
  return ms.map((perDaemon, c) =>
    perDaemon.map((xs, d) => {
      const s = [...xs].sort((a, b) => a - b);
      const body = last[c]![d]!;
      return { p50ms: pct(s, 50), p99ms: pct(s, 99), meanMs: xs.reduce((a, b) => a + b, 0) / xs.length, samples: xs.length, items: (JSON.parse(body.toString()) as unknown[]).length, bytes: body.length };
    }),
  );
}

// ---- the run

async function runGoHttp(d: BenchDaemon, name: string): Promise<{ id: string; port: number }> {
  const port = await freePort();
  const r = await fetch(`${d.api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'go-http', InstanceName: name, Ports: [`${port}:8080`] }) });
  if (r.status !== 201) throw new Error(`run ${name}: ${r.status} ${await r.text()}`);
  const { Id } = (await r.json()) as { Id: string };
  await firstOk(`http://127.0.0.1:${port}/ping_test`);
  return { id: Id, port };
}

const empty = await startDaemon('cp-empty');
const full = await startDaemon('cp-full');
try {
  const info = hostInfo();
  const image = await full.build('go-http', 'go-http');
  // the instance every stopped one is a copy of: really run, answered, stopped
  const tmpl = await runGoHttp(full, 'web');
  const stop = await fetch(`${full.api}/instances/${tmpl.id}/stop`, { method: 'POST' });
  if (stop.status !== 200) throw new Error(`stop: ${stop.status} ${await stop.text()}`);
  const t0 = performance.now();
  fillStore(full.home, image.Id, tmpl.id);
  const fillS = (performance.now() - t0) / 1000;
  console.error(`store filled: ${COUNT} images, ${COUNT} stopped instances in ${fillS.toFixed(1)} s`);

  const idle: Idle[] = [await idleWindow(`${COUNT} stopped`, full, empty, COUNT, 0)];
  let running = 0;
  let latency: Latency[][] | undefined;
  for (const target of RUNNING) {
    for (; running < target; running++) await runGoHttp(full, `live-${running}`);
    idle.push(await idleWindow(`${COUNT} stopped + ${running} running`, full, empty, COUNT, running));
    // the latency with the first (small) number of running instances: the listing's live-state path
    if (!latency) {
      latency = await latencies([empty, full]);
      for (const [c, call] of CALLS.entries()) console.error(`GET ${call}: empty p50 ${latency[c]![0]!.p50ms.toFixed(2)} p99 ${latency[c]![0]!.p99ms.toFixed(2)} ms; ${latency[c]![1]!.items} items p50 ${latency[c]![1]!.p50ms.toFixed(2)} p99 ${latency[c]![1]!.p99ms.toFixed(2)} ms`);
    }
  }
  if (!latency) latency = await latencies([empty, full]);
  const runningAtLatency = RUNNING[0] ?? 0;

  // the watcher's cost: against the empty daemon of the same window, per instance
  const base = idle[0]!;
  const perStoppedUs = ((base.daemonMsPerS - base.emptyDaemonMsPerS) / COUNT) * 1000;
  const perRunning = idle.slice(1).map((w) => ({
    running: w.running,
    daemonMsPerSEach: (w.daemonMsPerS - w.emptyDaemonMsPerS - (base.daemonMsPerS - base.emptyDaemonMsPerS)) / w.running,
    supervisorMsPerSEach: w.supervisorsMsPerS / w.running,
  }));

  const rows = CALLS.map((call, c) => ({ call: `GET ${call}`, empty: latency![c]![0]!, full: latency![c]![1]! }));
  const result = {
    machine: info,
    method: 'sequential requests (one in flight), interleaved between the two daemons call by call; p99 by nearest rank',
    store: { images: COUNT, stoppedInstances: COUNT, runningAtLatency, what: 'copies of one real go-http image (folder hard-linked, manifest rewritten) and of one real stopped go-http instance, inserted through the daemon\'s Store' },
    samples: SAMPLES,
    fillSeconds: fillS,
    rows,
    idleSeconds: IDLE_S,
    idle,
    perStoppedInstanceUsPerS: perStoppedUs,
    perRunningInstance: perRunning,
    aims: (['p50', 'p99'] as const).flatMap((q) => {
      const r = rows.find((x) => x.call === 'GET /instances');
      if (!r) return [];
      const docker = rows.find((x) => x.call.includes('containers/json'));
      const key = q === 'p50' ? 'p50ms' : 'p99ms';
      return [{
        id: `control-plane-${q}`,
        aim: `control plane: \`GET /instances\` ${q} with ${COUNT} instances and ${COUNT} images in the store, beside the empty store`,
        target: 'reported',
        value: Number(r.full[key].toFixed(1)),
        unit: 'ms',
        met: null,
        compares: `${COUNT}+${COUNT} store vs empty store: ${r.full[key].toFixed(1)} vs ${r.empty[key].toFixed(1)} ms`,
        ...(docker ? { detail: `Docker's containers/json: ${docker.full[key].toFixed(1)} vs ${docker.empty[key].toFixed(1)} ms` } : {}),
      }];
    }),
  };
  const out = writeModuleResult('control-plane', result);

  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const lines = [
    `Control plane at scale (${info.cores} × ${info.cpuModel}; ${SAMPLES} sequential requests per call and store, interleaved between an empty daemon and one whose store holds ${COUNT} images and ${COUNT} stopped instances — copies of one real go-http image and of one real stopped go-http instance, inserted through the daemon's own store — plus ${runningAtLatency} running go-http instance${runningAtLatency === 1 ? '' : 's'}):`,
    '',
    `| call | empty store p50 / p99 | ${COUNT} images, ${COUNT + runningAtLatency} instances p50 / p99 | answer |`,
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.call}\` | ${f(r.empty.p50ms)} / ${f(r.empty.p99ms)} ms | ${f(r.full.p50ms)} / ${f(r.full.p99ms)} ms | ${r.full.items} items, ${(r.full.bytes / 1024).toFixed(0)} KiB |`),
    '',
    `The daemon's CPU while idle (its threads' on-CPU time from /proc schedstat, the median of ${SLICES} parts of ${IDLE_S} s; the empty daemon measured in the same window), and its supervisors' (one process per running VM; the mean over the ${IDLE_S} s):`,
    '',
    '| store | daemon CPU | empty daemon | supervisors |',
    '|---|---|---|---|',
    ...idle.map((w) => `| ${w.label} | ${f(w.daemonMsPerS)} ms/s | ${f(w.emptyDaemonMsPerS)} ms/s | ${f(w.supervisorsMsPerS)} ms/s |`),
    '',
    `Per instance: a stopped one costs the watcher ${perStoppedUs.toFixed(1)} µs of CPU per second; ${perRunning.map((p) => `with ${p.running} running, each costs the daemon ${p.daemonMsPerSEach.toFixed(2)} ms/s and its supervisor ${p.supervisorMsPerSEach.toFixed(2)} ms/s`).join('; ')}.`,
  ];
  console.log('\n' + lines.join('\n'));
  writeReadmeBlock('control-plane', lines.join('\n'));
  console.log(`\nwritten to ${out}`);
} finally {
  await full.stop();
  await empty.stop();
}
