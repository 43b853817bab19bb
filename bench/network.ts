// `npm run bench:network`: bridged networks beside QEMU's user-mode network, in the same run, on
// the same images, inside a network namespace this bench makes (nothing it creates or reaches is
// on the host's own network). Measured:
// - boot: POST /instances/run → the first HTTP 200 from the instance (bridged: at its own
//   address; user mode: through its published port), both restored from a boot snapshot;
// - a request from the host: GET /ping_test (bridged: its address; user mode: the host port);
// - instance to instance: examples/counter's GET / (one Redis INCR) minus its GET /ping_test on
//   the same path, with Redis found by name on the bridge, or through the host in user mode.
// Writes bench/results/<date>-<host>-network.json and the README's network block.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ROOT, RUNS, SMOKE, startDaemon, stats, waitOk, writeModuleResult, writeReadmeBlock, type Stats } from './lib.js';

const REQUESTS = SMOKE ? 20 : 200;

if (!process.argv.includes('--inside')) {
  // make the namespace, run this same script inside it, remove it
  const ns = `unik-bench${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  let status = 1;
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    status = spawnSync('ip', ['netns', 'exec', ns, process.execPath, process.argv[1]!, '--inside', ...process.argv.slice(2)], { stdio: 'inherit' }).status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
  process.exit(status);
}

interface Inst {
  Id: string;
  IpAddress: string;
}

const daemon = await startDaemon('network', { UNIK_BRIDGED: 'on' });
const { api } = daemon;
const post = async (path: string, body?: unknown) => {
  const r = await fetch(api + path, { method: 'POST', headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  if (r.status >= 300) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? undefined : r.json();
};
const del = (path: string) => fetch(api + path, { method: 'DELETE' }).then((r) => r.arrayBuffer());
let port = 19000;

/** run → first 200; returns the milliseconds and the instance */
async function boot(image: string, name: string, bridged: boolean, extra: Record<string, unknown> = {}): Promise<{ ms: number; inst: Inst; base: string }> {
  const hostPort = ++port;
  const t0 = performance.now();
  const inst = (await post('/instances/run', { ImageName: image, InstanceName: name, Network: bridged ? 'bench' : 'user', ...(bridged ? {} : { Ports: [`127.0.0.1:${hostPort}:8080`] }), ...extra })) as Inst;
  const base = bridged ? `http://${inst.IpAddress}:8080` : `http://127.0.0.1:${hostPort}`;
  if (!(await waitOk(`${base}/ping_test`, 60_000))) throw new Error(`${name} never answered`);
  return { ms: performance.now() - t0, inst, base };
}

/** median latency (ms) of n sequential GETs on one keep-alive connection */
async function latency(url: string, n: number): Promise<Stats> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(url);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
    xs.push(performance.now() - t0);
  }
  return stats(xs);
}

try {
  for (const [name, dir] of [['counter', 'counter'], ['redis', join(ROOT, 'test/fixtures/elf-redis')]] as const) await daemon.build(name, dir);
  await post('/networks/create', { Name: 'bench', IPAM: { Config: [{ Subnet: '10.89.50.0/24' }] } });

  // boot: warm both kinds of boot snapshot first (not measured), then interleave
  for (const bridged of [true, false]) {
    const w = await boot('counter', `warm-${bridged}`, bridged);
    await del(`/instances/${w.inst.Id}?force=true`);
  }
  const bootB: number[] = [];
  const bootU: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const bridged of [true, false]) {
      const b = await boot('counter', `b${i}-${bridged}`, bridged);
      (bridged ? bootB : bootU).push(b.ms);
      await del(`/instances/${b.inst.Id}?force=true`);
    }
  }

  // instance to instance: a counter beside a redis, per mode
  const redisB = (await post('/instances/run', { ImageName: 'redis', InstanceName: 'redis', Network: 'bench' })) as Inst;
  const redisPort = ++port;
  await post('/instances/run', { ImageName: 'redis', InstanceName: 'redis-user', Network: 'user', Ports: [`127.0.0.1:${redisPort}:6379`] });
  const cB = await boot('counter', 'counter-b', true);
  // the same, with Redis by address: what the name lookup costs
  const cA = await boot('counter', 'counter-a', true, { Env: { REDIS_ADDR: `${redisB.IpAddress}:6379` } });
  // user mode: the host is 10.0.2.2 from the guest; redis is published on the host
  const cU = await boot('counter', 'counter-u', false, { Env: { REDIS_ADDR: `10.0.2.2:${redisPort}` } });
  for (const c of [cB, cA, cU]) if (!(await waitOk(`${c.base}/`, 30_000))) throw new Error(`${c.base}/ never counted`);
  const pingB = await latency(`${cB.base}/ping_test`, REQUESTS);
  const pingU = await latency(`${cU.base}/ping_test`, REQUESTS);
  const hitB = await latency(`${cB.base}/`, REQUESTS);
  const hitU = await latency(`${cU.base}/`, REQUESTS);
  const pingA = await latency(`${cA.base}/ping_test`, REQUESTS);
  const hitA = await latency(`${cA.base}/`, REQUESTS);

  const ms = (s: Stats) => `${s.median.toFixed(2)} ms`;
  const result = {
    runs: RUNS,
    requests: REQUESTS,
    bootBridgedMs: stats(bootB),
    bootUserMs: stats(bootU),
    hostToInstance: { bridged: pingB, user: pingU },
    counterHit: { bridged: hitB, bridgedByAddress: hitA, user: hitU },
    instanceToInstanceMs: { bridged: hitB.median - pingB.median, bridgedByAddress: hitA.median - pingA.median, user: hitU.median - pingU.median },
  };
  const out = writeModuleResult('network', result);
  const rel = out.slice(ROOT.length + 1);
  const rows = [
    ['`run` → first HTTP 200 (counter, restored from its boot snapshot)', `${(result.bootBridgedMs.median / 1000).toFixed(3)} s (${(result.bootBridgedMs.min / 1000).toFixed(3)}–${(result.bootBridgedMs.max / 1000).toFixed(3)})`, `${(result.bootUserMs.median / 1000).toFixed(3)} s (${(result.bootUserMs.min / 1000).toFixed(3)}–${(result.bootUserMs.max / 1000).toFixed(3)})`, (result.bootBridgedMs.median / result.bootUserMs.median).toFixed(2) + '×'],
    ['host → instance, GET /ping_test', `${ms(pingB)} (own address)`, `${ms(pingU)} (published port)`, (pingB.median / pingU.median).toFixed(2) + '×'],
    ['instance → instance, one Redis INCR (GET / minus GET /ping_test), by address', `${result.instanceToInstanceMs.bridgedByAddress.toFixed(2)} ms (redis at its address)`, `${result.instanceToInstanceMs.user.toFixed(2)} ms (through the host)`, (result.instanceToInstanceMs.bridgedByAddress / result.instanceToInstanceMs.user).toFixed(2) + '×'],
    ['the same, Redis found by name (a DNS query to the daemon per request)', `${result.instanceToInstanceMs.bridged.toFixed(2)} ms (redis:6379)`, '', ''],
  ];
  const block = [
    `Latest \`npm run bench:network\` (${result.bootBridgedMs.runs} boots and ${REQUESTS} requests each, medians (min–max), TCG, inside a network namespace; \`${rel}\`):`,
    '',
    '| | bridged network | user-mode network | ratio |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  console.log('\n' + block);
  writeReadmeBlock('network-bench', block);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
