// `npm run bench:api`: the daemon's API under a load generator (autocannon), beside podman's
// Docker API in the same run: GET /instances and GET /v1.43/containers/json with 10 instances
// in the store, at 10 and 50 connections. The instances are created, not booted: the figure is
// the API's, not the emulator's.
import autocannon from 'autocannon';
import { Podman } from '../test/integration/podman.js';
import { SMOKE, startDaemon, writeModuleResult } from './lib.js';

const SECONDS = SMOKE ? 1 : Number(process.env.BENCH_SECONDS) || 5;

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
const pm = new Podman();
try {
  // unik: one image, ten created instances
  await daemon.build('app', 'go-http');
  for (let i = 0; i < 10; i++)
    await fetch(`${daemon.api}/v1.43/containers/create?name=c${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Image: 'app' }) });
  // podman: the same binary as an image, ten created containers
  await pm.start();
  for (let i = 0; i < 10; i++) pm.podman(['create', '--name', `c${i}`, 'localhost/gohttp']);
  const podmanPort = pm.port;

  const rows: Load[] = [];
  for (const connections of [10, 50]) {
    rows.push(await load('unik GET /instances', `${daemon.api}/instances`, connections));
    rows.push(await load('unik GET /v1.43/containers/json?all=1', `${daemon.api}/v1.43/containers/json?all=1`, connections));
    rows.push(await load('podman GET /v1.41/containers/json?all=1', `http://127.0.0.1:${podmanPort}/v1.41/containers/json?all=1`, connections));
  }
  const out = writeModuleResult('api', { seconds: SECONDS, instances: 10, rows });
  console.log(`\nAPI under load (autocannon, ${SECONDS} s each, 10 instances/containers in the store)\n`);
  console.log('| call | connections | req/s | p50 | p99 | errors |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.target} | ${r.connections} | ${r.reqPerSec.toFixed(0)} | ${r.p50ms} ms | ${r.p99ms} ms | ${r.errors} |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
  await pm.destroy();
}
