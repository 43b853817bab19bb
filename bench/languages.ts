// `npm run bench:languages`: per example app — image size, cold and warm build, `run` → first
// HTTP 200 (median of BENCH_RUNS, default 5), and the smallest memory at which it still answers
// (bisection between 16 MB and the image's default). After every build the daemon boots the new
// image once in the background for its boot snapshot: each build waits for that template before
// the next timed step (lib.ts waitForTemplate), so no build or boot is timed beside one.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { ROOT, RUNS, SMOKE, startDaemon, stats, waitForTemplate, writeModuleResult } from './lib.js';

// smoke: every example, one boot, no memory bisection
const EXAMPLES = (process.env.BENCH_EXAMPLES ?? 'go-http,c-http,node-http,python-http,java-http').split(',').filter((e) => existsSync(join(ROOT, 'examples', e)));

const daemon = await startDaemon('languages');
const { api } = daemon;

/** Times one build; then waits, untimed, for the template boot it started in the background. */
async function build(name: string, force: boolean): Promise<{ ms: number; size: number; memory: number }> {
  const t = performance.now();
  const img = await daemon.build(name, name, `?force=${force}`);
  const ms = performance.now() - t;
  await waitForTemplate(daemon, img);
  return { ms, size: img.SizeBytes, memory: img.RunSpec.DefaultInstanceMemory };
}

/** Runs the image; resolves with ms to the first 200 on /ping_test, or undefined if it never answers. */
async function boot(name: string, memoryMb?: number, deadlineMs = 120_000): Promise<number | undefined> {
  const port = await freePort();
  const t = performance.now();
  const r = await fetch(`${api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: name, Ports: [`${port}:8080`], ...(memoryMb ? { MemoryMb: memoryMb } : {}) }) });
  if (r.status !== 201) {
    if (memoryMb) return undefined; // e.g. the guest died while booting with this little memory
    throw new Error(`run ${name}: ${await r.text()}`);
  }
  const { Id } = (await r.json()) as { Id: string };
  let ms: number | undefined;
  try {
    while (performance.now() - t < deadlineMs) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/ping_test`, { signal: AbortSignal.timeout(250) });
        if (res.status === 200 && (await res.text()) === 'pong') {
          ms = performance.now() - t;
          break;
        }
      } catch {
        /* not yet */
      }
      const state = ((await (await fetch(`${api}/instances/${Id}`)).json()) as { State: string }).State;
      if (state === 'stopped' || state === 'error') break;
      await sleep(10);
    }
  } finally {
    await fetch(`${api}/instances/${Id}?force=true`, { method: 'DELETE' });
  }
  return ms;
}

const rows: Record<string, unknown>[] = [];
try {
  for (const name of EXAMPLES) {
    const cold = await build(name, false);
    const warm = stats(SMOKE ? [(await build(name, true)).ms] : [(await build(name, true)).ms, (await build(name, true)).ms, (await build(name, true)).ms]);
    const boots: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const ms = await boot(name);
      if (ms === undefined) throw new Error(`${name} did not answer`);
      boots.push(ms);
    }
    // smallest memory that still answers: bisect in 8 MB steps between 16 and the default
    let ok = cold.memory;
    let bad = 8;
    while (!SMOKE && ok - bad > 8) {
      const mid = Math.round((ok + bad) / 16) * 8;
      if (mid <= bad || mid >= ok) break;
      if ((await boot(name, mid, 90_000)) !== undefined) ok = mid;
      else bad = mid;
    }
    rows.push({ example: name, imageBytes: cold.size, buildColdS: cold.ms / 1000, buildWarmS: warm.median / 1000, bootS: stats(boots.map((b) => b / 1000)), defaultMemoryMb: cold.memory, minMemoryMb: ok });
    console.error(`${name}: done`);
  }
  const out = writeModuleResult('languages', { runs: RUNS, rows });
  console.log(`\nunik per-language benchmark (boot = run → first HTTP 200, restored from the boot snapshot, median of ${RUNS}; builds timed with no template boot running)\n`);
  console.log('| example | image | build cold | build warm | boot median (min–max) | default memory | smallest memory that answers |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows as { example: string; imageBytes: number; buildColdS: number; buildWarmS: number; bootS: { median: number; min: number; max: number }; defaultMemoryMb: number; minMemoryMb: number }[])
    console.log(`| ${r.example} | ${(r.imageBytes / 1e6).toFixed(2)} MB | ${r.buildColdS.toFixed(2)} s | ${r.buildWarmS.toFixed(2)} s | ${r.bootS.median.toFixed(2)} s (${r.bootS.min.toFixed(2)}–${r.bootS.max.toFixed(2)}) | ${r.defaultMemoryMb} MB | ${r.minMemoryMb} MB |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
