// `npm run bench`: the core figures, each beside a reference measured in the same run.
//   build: cold and warm `unik push` of examples/go-http  vs  `go build` alone (cold cache / warm)
//   boot:  POST /instances/run → first HTTP 200          vs  the same binary started on the host
//   size:  kernel and image bytes                          vs  the static binary alone
// Medians with min and max; BENCH_RUNS sets the number of boots (default 5).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { hostname, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { ROOT, startDaemon, stats } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS) || 5;

async function firstOk(url: string, deadlineMs = 120_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    try {
      // short attempts: a connection opened before the guest network is up waits for
      // slirp to retransmit its SYN (about a second), which is not boot time
      const r = await fetch(url, { signal: AbortSignal.timeout(250) });
      if (r.status === 200) return;
    } catch {
      /* not yet */
    }
    await sleep(5);
  }
  throw new Error(`${url} never answered`);
}

const secs = (ms: number) => Math.round(ms) / 1000;

function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  return fn().then((v) => [performance.now() - t0, v]);
}

const daemon = await startDaemon('core');
const { api, home } = daemon;
try {
  const push = (force: boolean) => daemon.build('go-http', 'go-http', `?lang=go&force=${force}`);

  // build: unik (fresh UNIK_HOME, so Go's build cache is empty) vs go build with an empty cache
  const [coldMs] = await time(() => push(false));
  const warm: number[] = [];
  let image: { Id: string; SizeBytes: number } = { Id: '', SizeBytes: 0 };
  for (let i = 0; i < 3; i++) {
    const [ms, img] = await time(() => push(true));
    warm.push(ms);
    image = img;
  }
  const gocache = mkdtempSync(join(tmpdir(), 'gocache-'));
  const goBuild = () => execFileSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', join(home, 'native'), '.'], { cwd: join(ROOT, 'examples/go-http'), env: { ...process.env, CGO_ENABLED: '0', GOCACHE: gocache } });
  const [goColdMs] = await time(async () => goBuild());
  const goWarm: number[] = [];
  for (let i = 0; i < 3; i++) goWarm.push((await time(async () => goBuild()))[0]);
  rmSync(gocache, { recursive: true, force: true });

  // size
  const manifest = JSON.parse(execFileSync('cat', [join(home, 'images', image.Id, 'manifest.json')], { encoding: 'utf8' }));
  const binaryBytes = statSync(join(home, 'native')).size;

  // boot: run → first 200, vs the host process → first 200
  const boots: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const hp = await freePort();
    const [ms, inst] = await time(async () => {
      const r = await fetch(`${api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'go-http', InstanceName: `b${i}`, Ports: [`${hp}:8080`] }) });
      if (r.status !== 201) throw new Error(`run failed: ${r.status} ${await r.text()}`);
      const j = (await r.json()) as { Id: string };
      await firstOk(`http://127.0.0.1:${hp}/ping_test`);
      return j;
    });
    boots.push(ms);
    await fetch(`${api}/instances/${inst.Id}?force=true`, { method: 'DELETE' });
  }
  const natives: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const hp = await freePort();
    const [ms, child] = await time(async () => {
      const c = spawn(join(home, 'native'), [], { env: { ...process.env, PORT: String(hp) }, stdio: 'ignore' });
      await firstOk(`http://127.0.0.1:${hp}/ping_test`);
      return c;
    });
    natives.push(ms);
    child.kill('SIGKILL');
  }
  const accel = (await fetch(`${api}/providers`).then((r) => r.json()) as { Reason: string }[])[0]?.Reason ?? '';

  const result = {
    date: new Date().toISOString(),
    host: hostname(),
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    accel,
    kernelBytes: manifest.kernel.sizeBytes,
    rootBytes: manifest.root.sizeBytes,
    imageBytes: image.SizeBytes,
    binaryBytes,
    buildColdS: secs(coldMs),
    buildWarmS: stats(warm.map(secs)),
    goBuildColdS: secs(goColdMs),
    goBuildWarmS: stats(goWarm.map(secs)),
    bootToHttp200S: stats(boots.map(secs)),
    nativeProcessToHttp200S: stats(natives.map(secs)),
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = join(ROOT, 'bench/results', `${result.date.slice(0, 10)}-${result.host}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  const s = (x: { median: number; min: number; max: number }) => `${x.median.toFixed(3)} s (min ${x.min.toFixed(3)}, max ${x.max.toFixed(3)})`;
  console.log(`\nunik core benchmark — ${result.cpu}; accelerator: ${accel}\n`);
  console.log('| figure | unik | reference | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| image size (kernel + initramfs) | ${mb(result.imageBytes)} (kernel ${mb(result.kernelBytes)}, root ${mb(result.rootBytes)}) | static Go binary ${mb(binaryBytes)} | ${(result.imageBytes / binaryBytes).toFixed(2)}x |`);
  console.log(`| build, cold (empty Go cache) | ${result.buildColdS.toFixed(2)} s | go build ${result.goBuildColdS.toFixed(2)} s | ${(result.buildColdS / result.goBuildColdS).toFixed(2)}x |`);
  console.log(`| build, warm (median of 3) | ${s(result.buildWarmS)} | go build ${s(result.goBuildWarmS)} | ${(result.buildWarmS.median / result.goBuildWarmS.median).toFixed(2)}x |`);
  console.log(`| run → first HTTP 200 (median of ${RUNS}) | ${s(result.bootToHttp200S)} | host process ${s(result.nativeProcessToHttp200S)} | ${(result.bootToHttp200S.median / result.nativeProcessToHttp200S.median).toFixed(1)}x |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
