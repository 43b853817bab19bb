// `npm run bench:hub`: push and pull throughput of a ~50 MB unik image against Debian's
// docker-registry on 127.0.0.1, beside `skopeo copy` of the same artifact in the same run.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Registry } from '../test/integration/registry.js';
import { SMOKE, startDaemon, stats, writeModuleResult } from './lib.js';

const RUNS = SMOKE ? 1 : Number(process.env.BENCH_RUNS) || 3;
const median = (xs: number[]) => stats(xs).median;

const registry = new Registry();
await registry.start();
const daemon = await startDaemon('hub');
const { api, home } = daemon;
try {
  // a Go app carrying 46 MB of incompressible data: a ~50 MB image
  const app = join(home, 'bigapp');
  mkdirSync(app);
  writeFileSync(join(app, 'go.mod'), 'module example.com/bigapp\n\ngo 1.19\n');
  writeFileSync(join(app, 'blob.bin'), randomBytes(46 * 1024 * 1024));
  writeFileSync(join(app, 'main.go'), 'package main\n\nimport (\n\t_ "embed"\n\t"fmt"\n\t"net/http"\n)\n\n//go:embed blob.bin\nvar blob []byte\n\nfunc main() {\n\thttp.HandleFunc("/ping_test", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong", len(blob) > 0) })\n\thttp.ListenAndServe(":8080", nil)\n}\n');
  const imageBytes = (await daemon.build('big', app, '?lang=go')).SizeBytes;

  // the first push packs the image's OCI blobs (gzip), which later pushes reuse
  const t0 = performance.now();
  const first = await fetch(`${api}/images/push/big?ref=${registry.host}/bench/first:v1`, { method: 'POST' });
  if (first.status !== 202) throw new Error(`push: ${await first.text()}`);
  const firstPushMs = performance.now() - t0;
  const push: number[] = [];
  const pull: number[] = [];
  const skPush: number[] = [];
  const skPull: number[] = [];
  let wire = 0;
  for (let i = 0; i < RUNS; i++) {
    const ref = `${registry.host}/bench/u${i}:v1`;
    let t = performance.now();
    const r = await fetch(`${api}/images/push/big?ref=${ref}`, { method: 'POST' });
    if (r.status !== 202) throw new Error(`push: ${await r.text()}`);
    push.push(performance.now() - t);
    wire = ((await r.json()) as { Size: number }).Size;

    t = performance.now();
    const p = await fetch(`${api}/images/pull/pulled?ref=${ref}&force=true`, { method: 'POST' });
    if (p.status !== 202) throw new Error(`pull: ${await p.text()}`);
    pull.push(performance.now() - t);

    const dir = join(home, `sk${i}`);
    t = performance.now();
    execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `dir:${dir}`]);
    skPull.push(performance.now() - t);
    t = performance.now();
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `dir:${dir}`, `docker://${registry.host}/bench/s${i}:v1`]);
    skPush.push(performance.now() - t);
    rmSync(dir, { recursive: true, force: true });
  }
  const mbps = (ms: number) => wire / 1e6 / (ms / 1000);
  const inS = (xs: number[]) => stats(xs.map((x) => x / 1000));
  const result = { runs: RUNS, imageBytes, wireBytes: wire, firstPushS: firstPushMs / 1000, pushS: median(push) / 1000, pullS: median(pull) / 1000, skopeoPushS: median(skPush) / 1000, skopeoPullS: median(skPull) / 1000, stats: { pushS: inS(push), pullS: inS(pull), skopeoPushS: inS(skPush), skopeoPullS: inS(skPull) } };
  const out = writeModuleResult('hub', result);
  console.log(`\nunik hub benchmark: a ${(imageBytes / 1e6).toFixed(1)} MB image (${(wire / 1e6).toFixed(1)} MB on the wire), median of ${RUNS}, to a local docker-registry\n`);
  console.log('| transfer | unik | skopeo copy (same artifact) | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| first push (packs the OCI blobs, then uploads) | ${result.firstPushS.toFixed(2)} s = ${mbps(firstPushMs).toFixed(0)} MB/s | — | — |`);
  console.log(`| push (to a new repository) | ${result.pushS.toFixed(2)} s = ${mbps(median(push)).toFixed(0)} MB/s | ${result.skopeoPushS.toFixed(2)} s = ${mbps(median(skPush)).toFixed(0)} MB/s | ${(result.pushS / result.skopeoPushS).toFixed(2)}x |`);
  console.log(`| pull (into a new image) | ${result.pullS.toFixed(2)} s = ${mbps(median(pull)).toFixed(0)} MB/s | ${result.skopeoPullS.toFixed(2)} s = ${mbps(median(skPull)).toFixed(0)} MB/s | ${(result.pullS / result.skopeoPullS).toFixed(2)}x |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
  await registry.destroy();
}
