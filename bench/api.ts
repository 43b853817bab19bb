// `npm run bench:api`: the daemon's API under a load generator (autocannon), beside podman's
// Docker API in the same run: GET /instances and GET /v1.43/containers/json with 10 instances
// in the store, at 10 and 50 connections. The instances are created, not booted: the figure is
// the API's, not the emulator's.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { freePort } from '../test/integration/harness.js';
import { ROOT, startDaemon } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS) || 5;

interface Load {
  target: string;
  connections: number;
  reqPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

async function load(target: string, url: string, connections: number): Promise<Load> {
  const r = await autocannon({ url, connections, duration: SECONDS });
  return { target, connections, reqPerSec: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99, errors: r.errors + r.non2xx };
}

const daemon = await startDaemon('api');
const pm = mkdtempSync(join(tmpdir(), 'unik-bench-podman-'));
const podmanEnv = { ...process.env, CONTAINERS_REGISTRIES_CONF: join(pm, 'registries.conf'), CONTAINERS_CONF: join(pm, 'containers.conf') };
const storage = ['--root', join(pm, 'root'), '--runroot', join(pm, 'runroot')];
const podmanPort = await freePort();
let podman: ReturnType<typeof spawn> | undefined;
try {
  // unik: one image, ten created instances
  const tarball = join(daemon.home, 'app.tgz');
  execFileSync('tar', ['-czf', tarball, '-C', join(ROOT, 'examples/go-http'), '.']);
  const form = new FormData();
  form.append('tarfile', new Blob([readFileSync(tarball)]), 'app.tgz');
  if ((await fetch(`${daemon.api}/images/app/create`, { method: 'POST', body: form })).status !== 201) throw new Error('build failed');
  for (let i = 0; i < 10; i++)
    await fetch(`${daemon.api}/v1.43/containers/create?name=c${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Image: 'app' }) });

  // podman: the same binary as an image, ten created containers
  writeFileSync(join(pm, 'registries.conf'), 'unqualified-search-registries = []\n');
  writeFileSync(join(pm, 'containers.conf'), '[containers]\ndefault_ulimits=["nofile=1024:1024","nproc=1024:1024"]\n');
  mkdirSync(join(pm, 'rootfs'));
  execFileSync('go', ['build', '-o', join(pm, 'rootfs', 'app'), '.'], { cwd: join(ROOT, 'examples/go-http'), env: { ...process.env, CGO_ENABLED: '0' } });
  execFileSync('tar', ['-C', join(pm, 'rootfs'), '-cf', join(pm, 'rootfs.tar'), '.']);
  execFileSync('podman', [...storage, 'import', '--change', 'CMD ["/app"]', join(pm, 'rootfs.tar'), 'localhost/app:latest'], { env: podmanEnv, stdio: 'ignore' });
  for (let i = 0; i < 10; i++) execFileSync('podman', [...storage, 'create', '--name', `c${i}`, 'localhost/app'], { env: podmanEnv, stdio: 'ignore' });
  podman = spawn('podman', [...storage, 'system', 'service', '--time=0', `tcp://127.0.0.1:${podmanPort}`], { env: podmanEnv, stdio: 'ignore' });
  for (let i = 0; i < 100 && !(await fetch(`http://127.0.0.1:${podmanPort}/_ping`).then(() => true, () => false)); i++) await sleep(100);

  const rows: Load[] = [];
  for (const connections of [10, 50]) {
    rows.push(await load('unik GET /instances', `${daemon.api}/instances`, connections));
    rows.push(await load('unik GET /v1.43/containers/json?all=1', `${daemon.api}/v1.43/containers/json?all=1`, connections));
    rows.push(await load('podman GET /v1.41/containers/json?all=1', `http://127.0.0.1:${podmanPort}/v1.41/containers/json?all=1`, connections));
  }
  const result = { date: new Date().toISOString(), host: hostname(), seconds: SECONDS, instances: 10, rows };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = join(ROOT, 'bench/results', `${result.date.slice(0, 10)}-${result.host}-api.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nAPI under load (autocannon, ${SECONDS} s each, 10 instances/containers in the store)\n`);
  console.log('| call | connections | req/s | p50 | p99 | errors |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.target} | ${r.connections} | ${r.reqPerSec.toFixed(0)} | ${r.p50ms} ms | ${r.p99ms} ms | ${r.errors} |`);
  console.log(`\nwritten to ${out}`);
} finally {
  podman?.kill('SIGTERM');
  await daemon.stop();
  await sleep(300);
  try {
    execFileSync('podman', [...storage, 'rm', '-af'], { env: podmanEnv, stdio: 'ignore' });
  } catch {
    /* best effort */
  }
  rmSync(pm, { recursive: true, force: true });
}
