// `npm run bench:containers`: container images in, beside podman running the same images (issue
// 17). The Debian nginx, Redis and PostgreSQL images of test/integration/container-fixtures.ts
// (made once with debootstrap and podman, cached) are built into unik images from the local
// docker-registry, each twice: full and --slim (profiled once under a probe). Per app:
//
// - image size: the container image as podman reports it (unpacked) and as a pull moves it
//   (gzip layers), against unik's root: the erofs root disk plus the initramfs (the kernel,
//   shared by every image built with the same config, is recorded apart);
// - start → first answer: `podman run -d -p` and `POST /instances/run` to the first right answer
//   of the server's own client (an HTTP 200 with nginx's page, redis-cli PONG, psql `select 1`),
//   interleaved round by round (podman, unik full, unik slim), after one warm-up start of each
//   that is not counted; unik restores from the image's boot snapshot (waited for after the
//   build), and each run records whether it did;
// - host memory of the running instance, idle a few seconds after its first answer: the PSS and
//   RSS (smaps_rollup) of the QEMU process, and of the container's processes; beside them the
//   per-instance helper of each (unik's supervisor, podman's conmon);
// - the memory floor of the unik images (smallest MemoryMb that still answers, 8 MB steps, at
//   most 5 probes; not in smoke runs, BENCH_FLOOR=0 skips it).
//
// PostgreSQL runs without a volume on both sides: unik keeps its data on the guest's overlay
// (tmpfs, in guest RAM); podman makes an anonymous volume for the image's VOLUME on the host
// disk (removed with the container).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensure, FIXTURE_CLIENTS, FIXTURE_NAMES, PodmanStore, type FixtureImage, type FixtureName } from '../test/integration/container-fixtures.js';
import { freePort } from '../test/integration/harness.js';
import { podmanMem, unikMem, type Mem } from './memory.js';
import { hostInfo, ROOT, SMOKE, smallestMemory, startDaemon, stats, writeModuleResult, writeReadmeBlock, type Stats } from './lib.js';

const RUNS = SMOKE ? 1 : Number(process.env.BENCH_RUNS) || 3;
const FLOOR = !SMOKE && process.env.BENCH_FLOOR !== '0';
const APPS = (process.env.BENCH_APPS ?? FIXTURE_NAMES.join(',')).split(',').filter((a): a is FixtureName => (FIXTURE_NAMES as readonly string[]).includes(a));
/** what the slim build's profiling boot runs against the app (the guest's port) */
const PROBES: Record<FixtureName, string> = { nginx: 'http://:80/', redis: 'tcp://:6379', postgres: 'tcp://:5432' };
/** a start that has not answered by then does not answer (PostgreSQL's initdb under TCG is slow); a memory-floor probe gets 4× its warm-up, 30 s to 180 s */
const ANSWER_DEADLINE_MS = Number(process.env.BENCH_ANSWER_DEADLINE_MS) || 300_000;
const FLOOR_DEADLINE_MS = 180_000;
/** idle time between the first answer and the memory reading */
const SETTLE_MS = 5000;
/** a new client attempt every ATTEMPT_EVERY_MS (at most MAX_INFLIGHT at once), each bounded by ATTEMPT_MS */
const ATTEMPT_EVERY_MS = 100;
const ATTEMPT_MS = 5000;
const MAX_INFLIGHT = 4;

const VARIANTS = ['podman', 'full', 'slim'] as const;
type Variant = (typeof VARIANTS)[number];

const load = () => loadavg()[0]!.toFixed(2);
const log = (m: string) => console.error(`[containers load ${load()}] ${m}`);

interface Run {
  round: number;
  ms?: number;
  /** unik: restored from the boot snapshot or booted cold; podman: a container start */
  start: 'restore' | 'cold' | 'container';
  memoryMb?: number;
  mem?: Mem;
  error?: string;
}

/**
 * Ms from t0 to the first right answer of the app's own client, or undefined. A new attempt
 * starts every ATTEMPT_EVERY_MS while earlier ones may still wait: a connection made before the
 * guest's network is up waits for slirp to retransmit, and must not hold up the measurement.
 */
function firstAnswer(app: FixtureName, port: number, t0: number, deadlineMs: number, gaveUp: () => Promise<boolean>): Promise<number | undefined> {
  return new Promise((resolve) => {
    let done = false;
    let inflight = 0;
    let checking = false;
    let checked = Date.now();
    const finish = (v: number | undefined) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      resolve(v);
    };
    const attempt = () => {
      if (done || inflight >= MAX_INFLIGHT) return;
      inflight++;
      FIXTURE_CLIENTS[app](port, ATTEMPT_MS)
        .then((ok) => ok && finish(performance.now() - t0), () => undefined)
        .finally(() => inflight--);
    };
    const timer = setInterval(() => {
      if (performance.now() - t0 > deadlineMs) return finish(undefined);
      attempt();
      if (!checking && Date.now() - checked > 1000) {
        checking = true;
        void gaveUp()
          .then((g) => g && finish(undefined), () => undefined)
          .finally(() => {
            checking = false;
            checked = Date.now();
          });
      }
    }, ATTEMPT_EVERY_MS);
    attempt();
  });
}

interface Manifest {
  kernel: { sizeBytes: number };
  root: { sizeBytes: number };
  rootDisk?: { sizeBytes: number };
  defaultMemoryMb: number;
  slim?: { probe: string; keptFiles: number; totalFiles: number; keptBytes: number; totalBytes: number };
}

interface Built {
  name: string;
  id: string;
  buildSeconds: number;
  imageSizeBytes: number;
  kernelBytes: number;
  initramfsBytes: number;
  rootDiskBytes: number;
  defaultMemoryMb: number;
  slim?: Manifest['slim'];
}

const loadBefore = loadavg()[0]!;
const t00 = performance.now();
const fx = await ensure({ log: (m) => log(`fixtures: ${m}`) });
const store = await PodmanStore.create('unik-bench-containers-');
const daemon = await startDaemon('containers');
const { api } = daemon;
log(`${SMOKE ? 'smoke run' : 'full run'}: ${APPS.join(', ')}, ${RUNS} timed start(s) each${FLOOR ? ', memory floors' : ''}; daemon home ${daemon.home}`);

/** POST /images/NAME/create with progress as JSON lines (no client timeout: a slim build profiles under TCG). */
function buildImage(name: string, query: string): Promise<Built> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${api}/images/${name}/create?${query}`, { method: 'POST', headers: { accept: 'application/x-ndjson', 'content-length': '0' } }, (res) => {
      let buf = '';
      let result: { Id: string; SizeBytes: number } | undefined;
      let error = res.statusCode === 200 ? '' : `HTTP ${res.statusCode}`;
      let lastStep = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let j: { Progress?: { Step: string; Message: string }; Image?: { Id: string; SizeBytes: number }; Error?: unknown };
          try {
            j = JSON.parse(line);
          } catch {
            error += line;
            continue;
          }
          if (j.Progress && j.Progress.Message !== lastStep) {
            lastStep = j.Progress.Message;
            log(`  ${name}: ${j.Progress.Message}`);
          }
          if (j.Image) result = j.Image;
          if (j.Error) error = JSON.stringify(j.Error);
        }
      });
      res.on('end', () => {
        if (!result) return reject(new Error(`build ${name}: ${error || buf}`));
        const m = JSON.parse(readFileSync(join(daemon.home, 'images', result.Id, 'manifest.json'), 'utf8')) as Manifest;
        resolve({
          name,
          id: result.Id,
          buildSeconds: (performance.now() - t0) / 1000,
          imageSizeBytes: result.SizeBytes,
          kernelBytes: m.kernel.sizeBytes,
          initramfsBytes: m.root.sizeBytes,
          rootDiskBytes: m.rootDisk?.sizeBytes ?? 0,
          defaultMemoryMb: m.defaultMemoryMb,
          ...(m.slim ? { slim: m.slim } : {}),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitForTemplate(b: Built): Promise<boolean> {
  const dir = join(daemon.home, 'images', b.id, 'snapshots');
  const until = Date.now() + 900_000;
  while (Date.now() < until) {
    if (existsSync(dir) && readdirSync(dir).some((s) => s.startsWith(`${b.defaultMemoryMb}m-`) && existsSync(join(dir, s, 'state')))) return true;
    await sleep(500);
  }
  return false;
}

async function instanceState(id: string): Promise<string> {
  const r = await fetch(`${api}/instances/${id}`);
  return r.status === 200 ? ((await r.json()) as { State: string }).State : 'gone';
}

async function instanceLogTail(id: string): Promise<string> {
  try {
    const t = await (await fetch(`${api}/instances/${id}/logs`)).text();
    return t.split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

let seq = 0;

/** POST /instances/run → first answer; then (measure) the memory of the idle instance; then it is removed. */
async function unikRun(app: FixtureName, image: string, memoryMb: number, opts: { measure: boolean; deadlineMs: number; round: number }): Promise<Run> {
  const img = fx.images[app];
  const port = await freePort();
  const name = `${image}-${seq++}`;
  const t0 = performance.now();
  const r = await fetch(`${api}/instances/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ImageName: image, InstanceName: name, Ports: [`127.0.0.1:${port}:${img.port}`], MemoryMb: memoryMb }),
  });
  if (r.status !== 201) return { round: opts.round, start: 'cold', memoryMb, error: `run: HTTP ${r.status} ${(await r.text()).slice(0, 500)}` };
  const inst = (await r.json()) as { Id: string; Pid: number | null };
  try {
    let start: Run['start'] = 'cold';
    try {
      start = (JSON.parse(readFileSync(join(daemon.home, 'instances', inst.Id, 'launch.json'), 'utf8')) as { restore?: unknown }).restore ? 'restore' : 'cold';
    } catch {
      /* no launch file: not the QEMU provider's usual start */
    }
    const ms = await firstAnswer(app, port, t0, opts.deadlineMs, async () => ['stopped', 'error', 'gone'].includes(await instanceState(inst.Id)));
    if (ms === undefined) {
      const state = await instanceState(inst.Id);
      const tail = await instanceLogTail(inst.Id);
      // the console line that says why, first: e.g. a library the slim image lacks
      const why = tail.split('\n').find((l) => /error|cannot|no such file|fatal|panic|out of memory|killed/i.test(l))?.trim();
      return { round: opts.round, start, memoryMb, error: `${state === 'running' ? `no answer within ${opts.deadlineMs / 1000} s` : `the instance ${state} without answering`}${why ? `: ${why}` : ''}; console:\n${tail}` };
    }
    if (!opts.measure) return { round: opts.round, ms, start, memoryMb };
    await sleep(SETTLE_MS);
    const pid = ((await (await fetch(`${api}/instances/${inst.Id}`)).json()) as { Pid: number | null }).Pid ?? inst.Pid;
    const mem = pid ? unikMem(pid, memoryMb) : undefined;
    return { round: opts.round, ms, start, memoryMb, ...(mem ? { mem } : { error: 'no QEMU process found below the supervisor' }) };
  } finally {
    await fetch(`${api}/instances/${inst.Id}?force=true`, { method: 'DELETE' });
  }
}

/** `podman run -d -p` → first answer; then the memory of the idle container; then `rm -f -v` (its anonymous volume too). */
async function podmanRun(app: FixtureName, opts: { measure: boolean; round: number }): Promise<Run> {
  const img = fx.images[app];
  const port = await freePort();
  const name = `bench-${app}-${seq++}`;
  const t0 = performance.now();
  const proc = spawn('podman', store.argv(['run', '-d', '--name', name, '-p', `127.0.0.1:${port}:${img.port}`, img.tag]), { env: store.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  try {
    if (code !== 0) return { round: opts.round, start: 'container', error: `podman run: ${stderr.slice(0, 500)}` };
    const running = async () => (await store.podman(['inspect', '--format', '{{.State.Running}}', name]).catch(() => 'false')).trim() !== 'true';
    const ms = await firstAnswer(app, port, t0, ANSWER_DEADLINE_MS, running);
    if (ms === undefined) return { round: opts.round, start: 'container', error: `no answer; logs:\n${(await store.podman(['logs', name]).catch((e: Error) => e.message)).slice(-1500)}` };
    if (!opts.measure) return { round: opts.round, ms, start: 'container' };
    await sleep(SETTLE_MS);
    const [appPid, conmonPid] = (await store.podman(['inspect', '--format', '{{.State.Pid}} {{.State.ConmonPid}}', name])).trim().split(/\s+/).map(Number);
    return { round: opts.round, ms, start: 'container', mem: podmanMem(appPid!, conmonPid!) };
  } finally {
    await store.podman(['rm', '-f', '-v', '-t', '0', name]).catch(() => undefined);
  }
}


interface AppResult {
  app: FixtureName;
  package: string;
  packageVersion: string;
  port: number;
  container: { ref: string; sizeBytes: number; compressedBytes: number; layers: number };
  full?: Built;
  slim?: Built;
  /** the MemoryMb every unik start of this app was given */
  memoryMb?: number;
  warmup: Partial<Record<Variant, Run>>;
  runs: Record<Variant, Run[]>;
  firstAnswerMs: Partial<Record<Variant, Stats>>;
  pssKb: Partial<Record<Variant, Stats>>;
  rssKb: Partial<Record<Variant, Stats>>;
  helperPssKb: Partial<Record<Variant, Stats>>;
  helperRssKb: Partial<Record<Variant, Stats>>;
  guestPssKb: Partial<Record<Variant, Stats>>;
  guestRssKb: Partial<Record<Variant, Stats>>;
  codePssKb: Partial<Record<Variant, Stats>>;
  floorMb: Partial<Record<'full' | 'slim', { mb: number; probes: { mb: number; ok: boolean }[] }>>;
  problems: string[];
}

const results: AppResult[] = [];
let podmanVersion = '?';
try {
  podmanVersion = (await store.podman(['version', '--format', '{{.Client.Version}}'])).trim();
  for (const app of APPS) {
    const img: FixtureImage = fx.images[app];
    results.push({
      app,
      package: img.package,
      packageVersion: img.packageVersion,
      port: img.port,
      container: { ref: img.ref, sizeBytes: img.sizeBytes, compressedBytes: img.compressedBytes, layers: img.layers.length },
      warmup: {},
      runs: { podman: [], full: [], slim: [] },
      firstAnswerMs: {},
      pssKb: {},
      rssKb: {},
      helperPssKb: {},
      helperRssKb: {},
      guestPssKb: {},
      guestRssKb: {},
      codePssKb: {},
      floorMb: {},
      problems: [],
    });
    // the same image podman runs: loaded from the docker-archive into the bench's own store
    await store.podman(['load', '-q', '-i', img.dockerArchive]);
  }

  // the unik images, from the registry: full, then slim (a profiling boot of the full image under the probe)
  for (const r of results) {
    const ref = encodeURIComponent(fx.images[r.app].ref);
    for (const v of ['full', 'slim'] as const) {
      log(`building ${r.app}-${v} from ${fx.images[r.app].ref}`);
      try {
        r[v] = await buildImage(`${r.app}-${v}`, `fromImage=${ref}${v === 'slim' ? `&slim=true&probe=${encodeURIComponent(PROBES[r.app])}` : ''}`);
        const b = r[v]!;
        log(`${b.name}: ${(b.buildSeconds).toFixed(0)} s, root disk ${(b.rootDiskBytes / 1e6).toFixed(1)} MB + initramfs ${(b.initramfsBytes / 1e6).toFixed(2)} MB${b.slim ? `, kept ${b.slim.keptFiles} of ${b.slim.totalFiles} files` : ''}`);
      } catch (e) {
        r.problems.push(`${v} build failed: ${(e as Error).message}`);
        log(`${r.app}-${v}: ${(e as Error).message}`);
      }
    }
  }
  // every image's boot snapshot at its default memory (made in the background after its build)
  for (const r of results)
    for (const v of ['full', 'slim'] as const)
      if (r[v] && !(await waitForTemplate(r[v]!))) r.problems.push(`${v}: no boot snapshot after 15 min`);
  log('boot snapshots ready');

  // warm-up, not counted: each start once; unik at the image's default memory, or 256 MB if the full image does not answer there
  for (const r of results) {
    r.warmup.podman = await podmanRun(r.app, { measure: false, round: -1 });
    if (r.full) {
      r.memoryMb = r.full.defaultMemoryMb;
      r.warmup.full = await unikRun(r.app, r.full.name, r.memoryMb, { measure: false, deadlineMs: ANSWER_DEADLINE_MS, round: -1 });
      if (r.warmup.full.ms === undefined && r.memoryMb < 256) {
        r.problems.push(`full did not answer at its default ${r.memoryMb} MB: ${r.warmup.full.error}`);
        r.memoryMb = 256;
        r.warmup.full = await unikRun(r.app, r.full.name, r.memoryMb, { measure: false, deadlineMs: ANSWER_DEADLINE_MS, round: -1 });
      }
    }
    if (r.slim && r.memoryMb) r.warmup.slim = await unikRun(r.app, r.slim.name, r.memoryMb, { measure: false, deadlineMs: ANSWER_DEADLINE_MS, round: -1 });
    for (const v of VARIANTS) {
      const w = r.warmup[v];
      if (w) log(`warm-up ${r.app} ${v}: ${w.ms !== undefined ? `${(w.ms / 1000).toFixed(2)} s (${w.start})` : `no answer: ${w.error}`}`);
      if (w && w.ms === undefined) r.problems.push(`${v} warm-up: ${w.error}`);
    }
  }

  // the timed starts, round by round: every variant of every app sees the machine at nearly the same moments
  for (let round = 0; round < RUNS; round++) {
    for (const r of results) {
      for (const v of VARIANTS) {
        if (r.warmup[v]?.ms === undefined) continue;
        const run = v === 'podman' ? await podmanRun(r.app, { measure: true, round }) : await unikRun(r.app, r[v]!.name, r.memoryMb!, { measure: true, deadlineMs: ANSWER_DEADLINE_MS, round });
        r.runs[v].push(run);
        log(`round ${round + 1}/${RUNS} ${r.app} ${v}: ${run.ms !== undefined ? `${(run.ms / 1000).toFixed(2)} s (${run.start})` : 'no answer'}${run.mem ? `, PSS ${(run.mem.pssKb / 1024).toFixed(1)} MB, RSS ${(run.mem.rssKb / 1024).toFixed(1)} MB, helper PSS ${(run.mem.helperPssKb / 1024).toFixed(1)} MB${run.mem.guestPssKb !== undefined ? `, guest RAM PSS ${(run.mem.guestPssKb / 1024).toFixed(1)} MB, TCG code PSS ${(run.mem.codePssKb! / 1024).toFixed(1)} MB` : ''}` : ''}${run.error ? ` (${run.error.split('\n')[0]})` : ''}`);
        if (run.error) r.problems.push(`${v} round ${round + 1}: ${run.error}`);
      }
    }
  }
  for (const r of results) {
    for (const v of VARIANTS) {
      const ok = r.runs[v].filter((x) => x.ms !== undefined);
      if (ok.length) r.firstAnswerMs[v] = stats(ok.map((x) => x.ms!));
      const m = r.runs[v].flatMap((x) => (x.mem ? [x.mem] : []));
      if (m.length) {
        r.pssKb[v] = stats(m.map((x) => x.pssKb));
        r.rssKb[v] = stats(m.map((x) => x.rssKb));
        r.helperPssKb[v] = stats(m.map((x) => x.helperPssKb));
        r.helperRssKb[v] = stats(m.map((x) => x.helperRssKb));
        const g = m.filter((x) => x.guestPssKb !== undefined);
        if (g.length) {
          r.guestPssKb[v] = stats(g.map((x) => x.guestPssKb!));
          r.guestRssKb[v] = stats(g.map((x) => x.guestRssKb!));
          r.codePssKb[v] = stats(g.map((x) => x.codePssKb!));
        }
      }
    }
  }

  // the memory floor of the unik images: a probe at a new size makes that size's boot snapshot first (a template boot), then restores it
  if (FLOOR) {
    for (const r of results) {
      for (const v of ['full', 'slim'] as const) {
        if (r.warmup[v]?.ms === undefined) continue;
        const floor = await smallestMemory(async (mb) => (await unikRun(r.app, r[v]!.name, mb, { measure: false, deadlineMs: Math.min(FLOOR_DEADLINE_MS, Math.max(30_000, 4 * r.warmup[v]!.ms!)), round: -2 })).ms !== undefined, 16, r.memoryMb!, 8, 5);
        r.floorMb[v] = floor;
        log(`floor ${r.app} ${v}: ${floor.mb} MB (${floor.probes.map((p) => `${p.mb}${p.ok ? '✓' : '✗'}`).join(' ')})`);
      }
    }
  }
} finally {
  await daemon.stop();
  await store.destroy().catch(() => undefined);
  await fx.destroy();
}

const loadAfter = loadavg()[0]!;
const minutes = (performance.now() - t00) / 60_000;
const out = writeModuleResult('containers', {
  runs: RUNS,
  accel: 'tcg',
  ...hostInfo(),
  podman: `${podmanVersion} (runc, its own store, -p 127.0.0.1:PORT:PORT)`,
  loadAverage: { before: loadBefore, after: loadAfter },
  minutes,
  settleMs: SETTLE_MS,
  probes: PROBES,
  apps: results,
});

const MB = (b: number) => (b < 1e6 ? `${(b / 1e3).toFixed(0)} kB` : `${(b / 1e6).toFixed(1)} MB`);
const MiB = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const sec = (x: Stats) => (x.runs > 1 ? `${(x.median / 1000).toFixed(2)} s (${(x.min / 1000).toFixed(2)}–${(x.max / 1000).toFixed(2)})` : `${(x.median / 1000).toFixed(2)} s`);
const starts = (r: AppResult, v: Variant) => {
  const kinds = [...new Set(r.runs[v].map((x) => x.start))];
  return kinds.join(' and ');
};

function table(r: AppResult): string[] {
  const cell = (v: Variant, f: (v: Variant) => string) => (r.warmup[v]?.ms === undefined ? (v === 'podman' || r[v] ? 'did not answer' : 'not built') : f(v));
  const disk = (b: Built) => `${MB(b.rootDiskBytes + b.initramfsBytes)}: erofs root disk ${MB(b.rootDiskBytes)} + initramfs ${MB(b.initramfsBytes)}`;
  const image = (v: Variant) => {
    if (v === 'podman') return `${MB(r.container.sizeBytes)} unpacked, ${MB(r.container.compressedBytes)} gzip (${r.container.layers} layers)`;
    const b = r[v];
    if (!b) return 'not built';
    return b.slim ? `${disk(b)}; kept ${b.slim.keptFiles} of ${b.slim.totalFiles} files (${MB(b.slim.keptBytes)} of ${MB(b.slim.totalBytes)})` : disk(b);
  };
  const first = (v: Variant) => {
    const s = r.firstAnswerMs[v];
    if (!s) return 'no answer';
    const p = r.firstAnswerMs.podman;
    return `${sec(s)}${v === 'podman' ? '' : `, ${starts(r, v)}${p ? `; ${(s.median / p.median).toFixed(1)}× podman` : ''}`}`;
  };
  const mem = (v: Variant) => {
    const p = r.pssKb[v]!;
    const pp = r.pssKb.podman;
    const n = r.runs.podman.find((x) => x.mem)?.mem?.processes ?? 0;
    if (v === 'podman') return `${MiB(p.median)} (${MiB(r.rssKb[v]!.median)}), ${n} process${n === 1 ? '' : 'es'}`;
    return `${MiB(p.median)} (${MiB(r.rssKb[v]!.median)}), guest ${r.memoryMb} MB${pp ? `; ${(p.median / pp.median).toFixed(1)}× podman` : ''}`;
  };
  const inQemu = (v: Variant) => {
    const g = r.guestPssKb[v];
    const c = r.codePssKb[v];
    return g && c ? `${MiB(g.median)} + ${MiB(c.median)}` : '–';
  };
  const helper = (v: Variant) => MiB(r.helperPssKb[v]!.median);
  const has = (v: Variant, f: (v: Variant) => string) => (r.pssKb[v] ? f(v) : '–');
  const rows = [
    `| image | ${VARIANTS.map(image).join(' | ')} |`,
    `| start → first answer | ${VARIANTS.map((v) => cell(v, first)).join(' | ')} |`,
    `| host memory, idle: PSS (RSS) of the container's processes / of QEMU | ${VARIANTS.map((v) => cell(v, (x) => has(x, mem))).join(' | ')} |`,
    `| of QEMU's PSS: guest RAM + TCG code buffer | – | ${(['full', 'slim'] as const).map((v) => has(v, inQemu)).join(' | ')} |`,
    `| per-instance helper PSS: conmon / unik's supervisor | ${VARIANTS.map((v) => has(v, helper)).join(' | ')} |`,
  ];
  if (r.floorMb.full || r.floorMb.slim)
    rows.push(`| memory floor (smallest MemoryMb that answers, 8 MB steps; 16 MB, the least unik takes, is not tried) | – | ${(['full', 'slim'] as const).map((v) => (r.floorMb[v] ? `${r.floorMb[v]!.mb} MB` : '–')).join(' | ')} |`);
  const kernel = r.full?.kernelBytes ?? r.slim?.kernelBytes;
  return [
    `**${r.app}** (Debian ${r.package} ${r.packageVersion}, port ${r.port}; client: ${r.app === 'nginx' ? 'HTTP GET / → 200 with nginx\'s page' : r.app === 'redis' ? '`redis-cli ping` → PONG' : "`psql -c 'select 1'` → 1"}${kernel ? `; unik kernel ${MB(kernel)} beside the root, not counted` : ''}${r.slim?.slim ? `; slim probe \`${r.slim.slim.probe}\`` : ''})`,
    '',
    '| | podman (container) | unik full | unik slim |',
    '|---|---|---|---|',
    ...rows,
    ...(r.problems.length ? ['', ...r.problems.map((p) => `- ${p.split('\n')[0]!.slice(0, 300)}`)] : []),
  ];
}

const block = [
  `Latest \`npm run bench:containers\` (\`${out.slice(ROOT.length + 1)}\`, ${new Date().toISOString().slice(0, 10)}, host ${hostInfo().host}: ${hostInfo().cores} cores, QEMU ${hostInfo().qemu} under TCG, podman ${podmanVersion} with runc). ` +
    `The same image each time: podman runs the container image, unik the images built from it (full; slim: only what the app opened under the probe). ` +
    `Image: unpacked and gzip size of the container image; for unik the erofs root disk plus the initramfs. ` +
    `Start → first answer: \`podman run -d -p\` or \`POST /instances/run\` to the first right answer of the server's own client, median of ${RUNS}${RUNS > 1 ? ' (min–max)' : ''}, interleaved, after a warm-up start of each; the ratio is unik / podman. ` +
    `Host memory: PSS (and RSS) of the QEMU process or of the container's processes, idle ${SETTLE_MS / 1000} s after the first answer (median over the timed starts), with unik's supervisor or podman's conmon apart; QEMU's figure holds the guest's RAM as far as it was touched (its kernel, page cache and the overlay's tmpfs among it) and, under TCG, the translated code, which KVM would not have; the container's only its processes. ` +
    `PostgreSQL runs without a volume: on unik its data is on the guest's overlay (RAM), podman puts it in an anonymous volume on the host's disk. ` +
    `1-minute load average ${loadBefore.toFixed(2)} at the start, ${loadAfter.toFixed(2)} at the end (another job shares the machine at times).`,
  '',
  ...results.flatMap((r) => [...table(r), '']),
].join('\n').trimEnd();
console.log('\n' + block);
writeReadmeBlock('containers-bench', block);
console.log(`\nwritten to ${out} (${minutes.toFixed(1)} min)`);
