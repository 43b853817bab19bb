// `npm run bench:tcg-buffer`: what the size of TCG's code buffer (`-accel tcg,tb-size=N`,
// UNIK_TCG_TB_MB) saves in host memory and costs in time, for an idle go-http instance. The
// buffer fills with translated code until it is full, then is flushed and refilled, so an
// instance ends up holding all of it: a small buffer holds less memory, but retranslates more.
// One daemon per size (its own UNIK_HOME, the image built there), rounds interleaved across the
// sizes; in each, one instance restored from the boot snapshot:
// - `POST /instances/run` → first HTTP 200 (the app's start on a cold translation cache);
// - REQUESTS sequential requests right after (translated code reused, or flushed and redone);
// - once idle (SETTLE_MS), QEMU's PSS and RSS and the code buffer's share of them.
// Under KVM there is no code buffer: the module says so and measures nothing.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { firstOk, hostInfo, RUNS, SMOKE, startDaemon, stats, waitForTemplate, writeModuleResult, writeReadmeBlock, type BenchDaemon, type Stats } from './lib.js';
import { unikMem } from './memory.js';

/** 1024 MiB is QEMU 7.2's own default for a system emulator on a 64-bit host */
const SIZES = (process.env.BENCH_TB_SIZES ?? (SMOKE ? '8,16' : '4,8,16,32,1024')).split(',').map(Number);
const REQUESTS = SMOKE ? 20 : 200;
const SETTLE_MS = 3000;
const MB = 1024;

interface Sample {
  firstMs: number;
  requestsMs: number;
  qemuPssKb: number;
  qemuRssKb: number;
  codePssKb: number;
  supervisorPssKb: number;
}

async function oneRun(d: BenchDaemon, name: string, memoryMb: number): Promise<Sample> {
  const port = await freePort();
  const t0 = performance.now();
  const r = await fetch(`${d.api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'app', InstanceName: name, Ports: [`${port}:8080`] }) });
  if (r.status !== 201) throw new Error(`run ${name}: ${r.status} ${await r.text()}`);
  const inst = (await r.json()) as { Id: string; Pid: number };
  try {
    await firstOk(`http://127.0.0.1:${port}/ping_test`, 60_000);
    const firstMs = performance.now() - t0;
    const t1 = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const a = await fetch(`http://127.0.0.1:${port}/ping_test`);
      await a.arrayBuffer();
      if (a.status !== 200) throw new Error(`request ${i}: ${a.status}`);
    }
    const requestsMs = performance.now() - t1;
    await sleep(SETTLE_MS);
    const m = unikMem(inst.Pid, memoryMb);
    if (!m) throw new Error(`${name}: no QEMU under supervisor ${inst.Pid}`);
    return { firstMs, requestsMs, qemuPssKb: m.pssKb, qemuRssKb: m.rssKb, codePssKb: m.codePssKb ?? 0, supervisorPssKb: m.helperPssKb };
  } finally {
    await fetch(`${d.api}/instances/${inst.Id}?force=true`, { method: 'DELETE' }).then((x) => x.arrayBuffer());
  }
}

const host = hostInfo();
const daemons = new Map<number, BenchDaemon>();
try {
  let memoryMb = 0;
  let accel = '';
  for (const mb of SIZES) {
    const d = await startDaemon(`tb${mb}`, { UNIK_TCG_TB_MB: String(mb) });
    daemons.set(mb, d);
    const image = await d.build('app', 'go-http');
    memoryMb = image.RunSpec.DefaultInstanceMemory;
    await waitForTemplate(d, image);
    // the accelerator the daemon chose, as its boot snapshot's folder names it (<memory>m-<accel>)
    const snapshots = join(d.home, 'images', image.Id, 'snapshots');
    accel = (existsSync(snapshots) ? readdirSync(snapshots) : []).find((e) => e.startsWith(`${memoryMb}m-`))?.slice(`${memoryMb}m-`.length) ?? 'none (no boot snapshot was made)';
    if (accel !== 'tcg') break;
    await oneRun(d, 'warm-up', memoryMb); // its first run: nothing of a daemon's first run is counted
  }
  if (accel !== 'tcg') {
    const out = writeModuleResult('tcg-buffer', { machine: host, skipped: `not under TCG (the daemon chose ${accel}): no code buffer to size` });
    console.log(`tcg-buffer: skipped, ${accel}; written to ${out}`);
  } else {
    const samples = new Map<number, Sample[]>(SIZES.map((mb) => [mb, []]));
    for (let round = 0; round < RUNS; round++)
      for (const mb of SIZES) {
        const s = await oneRun(daemons.get(mb)!, `tb${mb}-${round}`, memoryMb);
        samples.get(mb)!.push(s);
        console.error(`[tcg-buffer] ${mb} MiB, round ${round + 1}: first 200 after ${s.firstMs.toFixed(0)} ms, ${REQUESTS} requests ${s.requestsMs.toFixed(0)} ms, QEMU PSS ${(s.qemuPssKb / MB).toFixed(1)} MB (code ${(s.codePssKb / MB).toFixed(1)})`);
      }
    const rows = SIZES.map((mb) => {
      const xs = samples.get(mb)!;
      const st = (f: (s: Sample) => number): Stats => stats(xs.map(f));
      return { tbMb: mb, firstMs: st((s) => s.firstMs), requestsMs: st((s) => s.requestsMs), qemuPssMb: st((s) => s.qemuPssKb / MB), qemuRssMb: st((s) => s.qemuRssKb / MB), codePssMb: st((s) => s.codePssKb / MB), supervisorPssMb: st((s) => s.supervisorPssKb / MB) };
    });
    const out = writeModuleResult('tcg-buffer', { machine: host, accel, memoryMb, requests: REQUESTS, settleMs: SETTLE_MS, rows });
    const ms = (s: Stats) => `${s.median.toFixed(0)} ms (${s.min.toFixed(0)}–${s.max.toFixed(0)})`;
    const mbs = (s: Stats) => `${s.median.toFixed(1)} MB`;
    writeReadmeBlock(
      'tcg-buffer',
      [
        `\`npm run bench:tcg-buffer\` on ${host.cores} cores (${host.cpuModel}), QEMU ${host.qemu}, TCG, go-http with ${memoryMb} MB; ${new Date().toISOString().slice(0, 10)}. One instance at a time, restored from its boot snapshot, medians of ${RUNS} rounds interleaved across the sizes; memory ${SETTLE_MS / 1000} s after the last request:`,
        '',
        `| code buffer (UNIK_TCG_TB_MB) | run → first 200 | then ${REQUESTS} requests, one after another | QEMU PSS idle | of which the code buffer | QEMU RSS |`,
        '|---|---|---|---|---|---|',
        ...rows.map((r) => `| ${r.tbMb} MiB${r.tbMb === 1024 ? " (QEMU's default)" : ''} | ${ms(r.firstMs)} | ${ms(r.requestsMs)} | ${mbs(r.qemuPssMb)} | ${mbs(r.codePssMb)} | ${mbs(r.qemuRssMb)} |`),
      ].join('\n'),
    );
    console.log(`written to ${out}`);
  }
} finally {
  for (const d of daemons.values()) await d.stop();
}
