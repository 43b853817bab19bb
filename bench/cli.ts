// `npm run bench:cli`: the `unik` CLI as a user's shell runs it, beside podman's, interleaved
// round by round (BENCH_RUNS, default 5), medians:
//   start-up: `unik --version`, `unik ps` (3 created instances), `unik images` against
//             `podman --version`, `podman ps -a` (3 created containers) and `node -e 0`, the floor;
//             bin/unik is spawned as is (through sh), in this environment (NODE_EXTRA_CA_CERTS said);
//   as typed: `unik run go-http -p HOST:8080` → first HTTP 200 on /ping_test, against
//             `podman run -d -p HOST:8080` of the same static binary → first 200 (bench/container.ts)
//             and the API path alone (POST /instances/run → first 200). Warm: daemon running, boot
//             snapshot made by a first run. Each command returns before the poll starts, as typed.
//   split:    where a `unik run` goes, from timestamps the CLI process reports through a preload
//             (diagnostics_channel): spawn → node running our code, → POST /instances/run sent,
//             → 201, → the CLI's last poll (instance running), → exit, → first 200.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { PodmanRef } from './container.js';
import { aimAtMost, buildGoBinary, hostInfo, ROOT, RUNS, startDaemon, stats, waitOk, writeModuleResult, writeReadmeBlock, type Aim, type Stats } from './lib.js';

const UNIK = join(ROOT, 'bin/unik');
const INSTANCES = 3;
const SETTLE_MS = 1000;
const CA_SET = !!process.env.NODE_EXTRA_CA_CERTS;

/** Wall ms from spawn to exit of a command, as a shell runs it; throws on a non-zero exit. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err}`))));
  });
}

const daemon = await startDaemon('cli');
const pm = new PodmanRef();
const env = { ...process.env, UNIK_HOST: daemon.api.replace(/^http:\/\//, '') };
const api = (path: string, init?: RequestInit) => fetch(`${daemon.api}${path}`, init);
const remove = async (id: string) => void (await api(`/instances/${id}?force=true`, { method: 'DELETE' })).arrayBuffer();

// The preload for the split: absolute times (ms since the epoch) of what the CLI process does.
const PRELOAD = join(daemon.home, 'cli-times.mjs');
writeFileSync(
  PRELOAD,
  `import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
const now = () => performance.timeOrigin + performance.now();
const t = { origin: performance.timeOrigin, preload: now(), requests: [] };
dc.subscribe('http.client.request.start', ({ request }) => t.requests.push({ path: request.method + ' ' + request.path, sent: now() }));
dc.subscribe('http.client.response.finish', ({ request }) => { const r = t.requests.findLast((x) => x.path === request.method + ' ' + request.path); if (r) r.answered = now(); });
process.on('exit', () => { t.exit = now(); writeFileSync(process.env.BENCH_CLI_TIMES, JSON.stringify(t)); });
`,
);

interface Split {
  nodeStartMs: number; // spawn → our preload runs (sh, exec, Node's own start-up)
  loadMs: number; // → POST /instances/run sent (the CLI's modules, the target)
  apiMs: number; // → 201 (the daemon creates and starts the instance)
  waitRunningMs: number; // → the last GET /instances/ID answered (State running)
  exitMs: number; // → the process has exited
  firstOkMs: number; // → first HTTP 200 from the app
}

/** `unik run` as typed, then polls: total ms to the first 200, and when the CLI was done. */
async function unikTyped(split = false): Promise<{ ms: number; cliMs: number; split?: Split }> {
  const hp = await freePort();
  const times = join(daemon.home, `times-${hp}.json`);
  const runEnv = split ? { ...env, BENCH_CLI_TIMES: times, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim() } : env;
  const t0 = performance.timeOrigin + performance.now();
  const cliMs = await timed(UNIK, ['run', 'go-http', '--name', `typed${hp}`, '-p', `127.0.0.1:${hp}:8080`], runEnv);
  if (!(await waitOk(`http://127.0.0.1:${hp}/ping_test`, 60_000))) throw new Error('unik go-http did not answer');
  const ms = performance.timeOrigin + performance.now() - t0;
  await remove(`typed${hp}`);
  if (!split) return { ms, cliMs };
  const t = JSON.parse(readFileSync(times, 'utf8')) as { preload: number; exit: number; requests: { path: string; sent: number; answered?: number }[] };
  const post = t.requests.find((r) => r.path === 'POST /instances/run');
  const lastGet = t.requests.filter((r) => r.path.startsWith('GET /instances/')).at(-1);
  if (!post?.answered) throw new Error(`no POST /instances/run seen: ${JSON.stringify(t)}`);
  const ran = lastGet?.answered ?? post.answered;
  return {
    ms,
    cliMs,
    split: { nodeStartMs: t.preload - t0, loadMs: post.sent - t.preload, apiMs: post.answered - post.sent, waitRunningMs: ran - post.answered, exitMs: t.exit - ran, firstOkMs: t0 + ms - t.exit },
  };
}

/** POST /instances/run → first 200, no CLI. */
async function apiPath(): Promise<number> {
  const hp = await freePort();
  const t0 = performance.now();
  const r = await api('/instances/run', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'go-http', Ports: [`${hp}:8080`] }) });
  if (r.status !== 201) throw new Error(`run: ${r.status} ${await r.text()}`);
  const inst = (await r.json()) as { Id: string };
  if (!(await waitOk(`http://127.0.0.1:${hp}/ping_test`, 60_000))) throw new Error('unik go-http (API) did not answer');
  const ms = performance.now() - t0;
  await remove(inst.Id);
  return ms;
}

try {
  const info = hostInfo();
  await daemon.build('go-http', 'go-http', '?lang=go');
  const binary = join(daemon.home, 'native');
  buildGoBinary(binary);
  pm.setup(binary);
  const podman = ['--root', join(pm.dir, 'root'), '--runroot', join(pm.dir, 'runroot')];
  const podmanEnv = { ...process.env, CONTAINERS_CONF: join(pm.dir, 'containers.conf'), CONTAINERS_REGISTRIES_CONF: join(pm.dir, 'registries.conf') };

  // what `ps` lists: created, not started, so no emulated guest competes for the CPU meanwhile
  for (let i = 0; i < INSTANCES; i++) {
    const r = await api(`/v1.43/containers/create?name=listed${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Image: 'go-http' }) });
    if (r.status !== 201) throw new Error(`create: ${r.status} ${await r.text()}`);
    pm.podman(['create', '--name', `listed${i}`, pm.image]);
  }
  // warm-up: the first run makes the boot snapshot; one of each so caches are as a user finds them
  await unikTyped();
  await apiPath();
  (await pm.boot()).stop();

  const start: Record<string, number[]> = { 'node -e 0': [], 'unik --version': [], 'podman --version': [], 'unik ps': [], 'podman ps -a': [], 'unik images': [] };
  const typed: number[] = [], typedCli: number[] = [], ctr: number[] = [], apiMs: number[] = [];
  const splits: Split[] = [];
  for (let i = 0; i < RUNS; i++) {
    await sleep(SETTLE_MS); // the last round's VMs are still being torn down: not what a user's shell meets
    start['node -e 0']!.push(await timed('node', ['-e', '0']));
    start['unik --version']!.push(await timed(UNIK, ['--version'], env));
    start['podman --version']!.push(await timed('podman', [...podman, '--version'], podmanEnv));
    start['unik ps']!.push(await timed(UNIK, ['ps'], env));
    start['podman ps -a']!.push(await timed('podman', [...podman, 'ps', '-a'], podmanEnv));
    start['unik images']!.push(await timed(UNIK, ['images'], env));

    const u = await unikTyped();
    typed.push(u.ms);
    typedCli.push(u.cliMs);
    const c = await pm.boot();
    if (c.ms === undefined) throw new Error('the podman container did not answer');
    ctr.push(c.ms);
    apiMs.push(await apiPath());
    const sp = await unikTyped(true);
    if (sp.split) splits.push(sp.split);
    console.error(`round ${i + 1}/${RUNS}: unik run ${(u.ms / 1000).toFixed(3)} s (CLI ${(u.cliMs / 1000).toFixed(3)} s), podman run ${(c.ms / 1000).toFixed(3)} s, API ${(apiMs.at(-1)! / 1000).toFixed(3)} s; ps ${start['unik ps']!.at(-1)!.toFixed(0)} ms, --version ${start['unik --version']!.at(-1)!.toFixed(0)} ms`);
  }

  const sec = (xs: number[]) => stats(xs.map((x) => x / 1000));
  const startS = Object.fromEntries(Object.entries(start).map(([k, v]) => [k, sec(v)]));
  const splitS = Object.fromEntries((Object.keys(splits[0] ?? {}) as (keyof Split)[]).map((k) => [k, sec(splits.map((s) => s[k]))]));
  const result = {
    machine: { ...info, podman: pm.version(), node: process.version },
    runs: RUNS,
    nodeExtraCaCerts: CA_SET,
    listed: INSTANCES,
    startS,
    asTyped: { unikRunS: sec(typed), unikRunCliS: sec(typedCli), podmanRunS: sec(ctr), apiRunS: sec(apiMs), splitS },
  };
  const unikRun = result.asTyped.unikRunS.median;
  const podmanRun = result.asTyped.podmanRunS.median;
  const aims: Aim[] = [
    {
      id: 'as-typed',
      aim: 'as typed: `unik run go-http -p …` → first HTTP 200, beside `podman run -d -p …` → first 200 of the same binary',
      target: '≤ ½ of podman',
      value: Number((unikRun / podmanRun).toFixed(2)),
      unit: '× podman',
      met: unikRun <= podmanRun / 2,
      compares: `unik run ${unikRun.toFixed(3)} s ÷ podman run -d ${podmanRun.toFixed(3)} s, medians, both warm`,
    },
    aimAtMost({ id: 'cli-ps', aim: '`unik ps` finishes', value: Number(startS['unik ps']!.median.toFixed(3)), unit: 's', compares: `podman ps -a: ${startS['podman ps -a']!.median.toFixed(3)} s; node -e 0: ${startS['node -e 0']!.median.toFixed(3)} s` }, 0.1),
    aimAtMost({ id: 'cli-version', aim: '`unik --version` finishes', value: Number(startS['unik --version']!.median.toFixed(3)), unit: 's', compares: `podman --version: ${startS['podman --version']!.median.toFixed(3)} s; node -e 0: ${startS['node -e 0']!.median.toFixed(3)} s` }, 0.1),
  ];
  Object.assign(result, { aims });
  const out = writeModuleResult('cli', result);

  const f = (x: Stats | undefined, d = 3) => (x ? `${x.median.toFixed(d)} s (${x.min.toFixed(d)}–${x.max.toFixed(d)})` : '—');
  const ratio = (a: Stats, b: Stats) => (a.median / b.median).toFixed(2);
  const aim = (ok: boolean) => (ok ? 'yes' : 'no');
  const t = result.asTyped;
  const lines = [
    `The CLI as a shell runs it (\`bin/unik\` spawned directly; NODE_EXTRA_CA_CERTS ${CA_SET ? 'set' : 'not set'} in this run's environment), medians of ${RUNS} interleaved rounds, ${info.cores} × ${info.cpuModel}, QEMU ${info.qemu} under TCG, ${process.version}, podman ${result.machine.podman}:`,
    '',
    '| command | unik | podman | ratio unik / podman | aim | met |',
    '|---|---|---|---|---|---|',
    `| \`--version\` | ${f(startS['unik --version'])} | ${f(startS['podman --version'])} | ${ratio(startS['unik --version']!, startS['podman --version']!)} | ≤ 0.1 s | ${aim(startS['unik --version']!.median <= 0.1)} |`,
    `| \`ps\` (${INSTANCES} created instances / containers) | ${f(startS['unik ps'])} | ${f(startS['podman ps -a'])} | ${ratio(startS['unik ps']!, startS['podman ps -a']!)} | ≤ 0.1 s | ${aim(startS['unik ps']!.median <= 0.1)} |`,
    `| \`images\` | ${f(startS['unik images'])} | — | — | — | — |`,
    `| \`node -e 0\` (the floor of any Node CLI) | ${f(startS['node -e 0'])} | — | — | — | — |`,
    '',
    'As typed, warm (daemon running, boot snapshot made): the command, then polling until go-http answers HTTP 200 on /ping_test:',
    '',
    '| start → first HTTP 200 | median (min–max) | aim | met |',
    '|---|---|---|---|',
    `| \`unik run go-http -p …\` (the CLI itself returned after ${t.unikRunCliS.median.toFixed(3)} s) | ${f(t.unikRunS)} | ≤ ½ of podman's | ${aim(t.unikRunS.median <= t.podmanRunS.median / 2)} |`,
    `| \`podman run -d -p …\`, the same static binary | ${f(t.podmanRunS)} | | |`,
    `| API alone: POST /instances/run | ${f(t.apiRunS)} | ≤ 0.25 s | ${aim(t.apiRunS.median <= 0.25)} |`,
    '',
    `Ratios: \`unik run\` → 200 over \`podman run -d\` → 200 = **${ratio(t.unikRunS, t.podmanRunS)}**; the API path over \`podman run -d\` = ${ratio(t.apiRunS, t.podmanRunS)}; \`unik run\` over the API path = ${ratio(t.unikRunS, t.apiRunS)}.`,
    '',
    `Where a \`unik run\` goes (medians of ${splits.length} runs timed from inside the CLI process): ` +
      [
        ['spawn → Node running the CLI', 'nodeStartMs'],
        ['loading the CLI → POST sent', 'loadMs'],
        ['POST /instances/run → 201', 'apiMs'],
        ['polling until "running"', 'waitRunningMs'],
        ['exit', 'exitMs'],
        ['exit → first 200', 'firstOkMs'],
      ]
        .map(([label, k]) => `${label} ${splitS[k!] ? `${(splitS[k!]!.median * 1000).toFixed(0)} ms` : '—'}`)
        .join(', ') +
      '.',
  ];
  console.log(`\n${lines.join('\n')}\n\nwritten to ${out}`);
  writeReadmeBlock('cli-bench', lines.join('\n'));
} finally {
  pm.destroy();
  await daemon.stop();
}
