// `npm run bench:api`: the daemon's API under a load generator (autocannon), beside podman's
// Docker API in the same run: GET /instances and GET /v1.43/containers/json with N instances in
// the store (10; 2 in smoke mode), at 10 and 50 connections, twice: with the instances created
// (the store alone) and then started and running (a listing then also looks at each live VM, as
// podman's looks at each container's runtime state).
import autocannon from 'autocannon';
import { setTimeout as sleep } from 'node:timers/promises';
import { Podman } from '../test/integration/podman.js';
import { SMOKE, startDaemon, writeModuleResult } from './lib.js';

const SECONDS = SMOKE ? 1 : Number(process.env.BENCH_SECONDS) || 5;
const N = SMOKE ? 2 : 10;
type State = 'created' | 'running';

interface Load {
  target: string;
  /** the instances/containers in the store: created only, or running */
  state: State;
  connections: number;
  reqPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

async function load(target: string, state: State, url: string, connections: number): Promise<Load> {
  const r = await autocannon({ url, connections, duration: SECONDS });
  return { target, state, connections, reqPerSec: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99, errors: r.errors + r.non2xx };
}

/** Polls `count()` until it reaches n (or throws after the deadline). */
async function until(what: string, count: () => Promise<number>, n: number, deadlineMs = 300_000): Promise<void> {
  const t0 = Date.now();
  while ((await count()) < n) {
    if (Date.now() - t0 > deadlineMs) throw new Error(`${what}: fewer than ${n} after ${deadlineMs / 1000} s`);
    await sleep(250);
  }
}

const daemon = await startDaemon('api');
const pm = new Podman();
try {
  // unik: one image, N created instances; podman: the same binary as an image, N created containers
  // (runc: crun refuses this kind of host's cgroup v1/v2 hybrid, see bench/container.ts)
  await daemon.build('app', 'go-http');
  for (let i = 0; i < N; i++)
    await fetch(`${daemon.api}/v1.43/containers/create?name=c${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Image: 'app' }) });
  await pm.start();
  for (let i = 0; i < N; i++) pm.podman(['--runtime', 'runc', 'create', '--name', `c${i}`, 'localhost/gohttp']);
  const podman = `http://127.0.0.1:${pm.port}`;

  const rows: Load[] = [];
  const round = async (state: State) => {
    for (const connections of [10, 50]) {
      rows.push(await load('unik GET /instances', state, `${daemon.api}/instances`, connections));
      rows.push(await load('unik GET /v1.43/containers/json?all=1', state, `${daemon.api}/v1.43/containers/json?all=1`, connections));
      rows.push(await load('podman GET /v1.41/containers/json?all=1', state, `${podman}/v1.41/containers/json?all=1`, connections));
    }
  };
  await round('created');

  // the same N started: unik's through its Docker API, podman's with its CLI; timed once all run
  for (let i = 0; i < N; i++) {
    const r = await fetch(`${daemon.api}/v1.43/containers/c${i}/start`, { method: 'POST' });
    if (r.status !== 204 && r.status !== 304) throw new Error(`start c${i}: ${r.status} ${await r.text()}`);
    pm.podman(['--runtime', 'runc', 'start', `c${i}`]);
  }
  const running = async (url: string, state: (x: Record<string, unknown>) => unknown) => ((await (await fetch(url)).json()) as Record<string, unknown>[]).filter((x) => state(x) === 'running').length;
  await until('unik instances running', () => running(`${daemon.api}/instances`, (x) => x.State), N);
  await until('podman containers running', () => running(`${podman}/v1.41/containers/json?all=1`, (x) => x.State), N);
  await round('running');

  const out = writeModuleResult('api', { seconds: SECONDS, instances: N, rows });
  console.log(`\nAPI under load (autocannon, ${SECONDS} s each, ${N} instances/containers in the store, created and then running)\n`);
  console.log('| call | instances | connections | req/s | p50 | p99 | errors |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.target} | ${N} ${r.state} | ${r.connections} | ${r.reqPerSec.toFixed(0)} | ${r.p50ms} ms | ${r.p99ms} ms | ${r.errors} |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
  await pm.destroy();
}
