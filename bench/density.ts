// `npm run bench:density`: N go-http instances launched at once (N = 1, 10, 50, 100; BENCH_COUNTS
// changes them), beside N podman containers of the same static binary and N plain host processes
// of it, in the same run, one N after another. For each:
// - the time from the first start request until every one answers /ping_test (unik: N
//   `POST /instances/run` at once, each a restore of the image's boot snapshot, made by a warm-up
//   run first; podman: N `podman run -d -p` at once);
// - the host memory once all are idle (SETTLE_MS after the last answer), as PSS (smaps_rollup:
//   pages shared copy-on-write with the snapshot or other instances, or mapped from one binary,
//   are split among the sharers) with RSS beside it: unik's instance is its supervisor and every
//   process below it (QEMU); podman's container is its processes and its conmon. The daemons' own
//   memory is given apart (unik's daemon; podman has none running).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, setGlobalDispatcher } from 'undici';
import { TCG_TB_MB } from '../src/providers/qemu/args.js';
import { processTree } from '../src/providers/qemu/state-receiver.js';
import { freePort } from '../test/integration/harness.js';
import { PodmanRef } from './container.js';
import { aimAtMost, buildGoBinary, hostInfo, SMOKE, startDaemon, writeModuleResult, writeReadmeBlock, type Aim } from './lib.js';
import { comm, podmanMem, qemuBreakdown, smaps, sumSmaps } from './memory.js';

// A connection per request, to the daemon as to the guests: at N=100 the connections of the
// runs sit idle for over a minute while the guests start, until the daemon's server closes them
// (its keep-alive timeout, 72 s); a client whose event loop lags under that load can then send
// its next request on one just closed ("other side closed", seen once on the 100 removals).
// A new connection costs a fraction of a millisecond, against figures in seconds.
setGlobalDispatcher(new Agent({ pipelining: 0 }));

const COUNTS = (process.env.BENCH_COUNTS ?? (SMOKE ? '1,2' : '1,10,50,100')).split(',').map(Number);
const SETTLE_MS = 5000;
/** all of N must answer by then (100 restores under TCG on 2 cores take minutes) */
const DEADLINE_MS = 600_000;
const MB = 1024;

/** Polls /ping_test every 50 ms (100 pollers must not take the cores from the guests); true once it answers 200. */
async function answered(port: number, until: number): Promise<boolean> {
  while (Date.now() < until) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/ping_test`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return true;
    } catch {
      /* not yet */
    }
    await sleep(50);
  }
  return false;
}

/** N at once: seconds until every port answers (undefined fields if some never did). */
async function allAnswer(ports: number[], t0: number): Promise<{ allAnswered: boolean; seconds: number }> {
  const ok = (await Promise.all(ports.map((p) => answered(p, Date.now() + DEADLINE_MS)))).every(Boolean);
  return { allAnswered: ok, seconds: (performance.now() - t0) / 1000 };
}

interface Side {
  allAnswered: boolean;
  seconds: number;
  pssMb: number;
  rssMb: number;
  pssPerInstanceMb: number;
  rssPerInstanceMb: number;
  /** the per-instance helper's share: unik's supervisor, podman's conmon (PSS, MB per instance) */
  helperPssPerInstanceMb?: number;
  error?: string;
}

const perInstance = (n: number, pssKb: number, rssKb: number, allAnswered: boolean, seconds: number): Side => ({
  allAnswered,
  seconds,
  pssMb: pssKb / MB,
  rssMb: rssKb / MB,
  pssPerInstanceMb: pssKb / MB / n,
  rssPerInstanceMb: rssKb / MB / n,
});

const daemon = await startDaemon('density');
const podman = new PodmanRef();
const host = hostInfo();
try {
  const image = await daemon.build('app', 'go-http');
  const memoryMb = image.RunSpec.DefaultInstanceMemory;
  const binary = join(daemon.home, 'native');
  buildGoBinary(binary);
  podman.setup(binary);
  const run = (name: string, port: number) =>
    fetch(`${daemon.api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'app', InstanceName: name, Ports: [`${port}:8080`] }) }).then(async (r) => {
      if (r.status !== 201) throw new Error(`run ${name}: ${r.status} ${await r.text()}`);
      return (await r.json()) as { Id: string; Pid: number };
    });
  const remove = (id: string) => fetch(`${daemon.api}/instances/${id}?force=true`, { method: 'DELETE' }).then((r) => r.arrayBuffer());
  // warm-up: the boot snapshot is made by the first run; every counted start restores it
  {
    const port = await freePort();
    const w = await run('warm-up', port);
    await allAnswer([port], performance.now());
    await remove(w.Id);
  }

  const rows = [];
  for (const n of COUNTS) {
    console.error(`[density] ${n} at once`);
    // unik
    let unik: Side;
    {
      const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
      const t0 = performance.now();
      const started = await Promise.allSettled(ports.map((p, i) => run(`d${n}-${i}`, p)));
      const runs = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      const a = await allAnswer(ports, t0);
      await sleep(SETTLE_MS);
      const trees = runs.map((r) => processTree(r.Pid));
      const all = sumSmaps(trees.flat());
      const helpers = sumSmaps(runs.map((r) => r.Pid));
      unik = { ...perInstance(n, all.pssKb, all.rssKb, a.allAnswered && !failed, a.seconds), helperPssPerInstanceMb: helpers.pssKb / MB / n, ...(failed ? { error: String(failed.reason) } : {}) };
      // where one QEMU's memory is (the guest's RAM, TCG's code buffer), for the note
      const qemu = trees[0]?.find((p) => comm(p).startsWith('qemu-system'));
      const breakdown = qemu ? qemuBreakdown(qemu, memoryMb) : {};
      const daemonMem = smaps(daemon.pid);
      await Promise.all(runs.map((r) => remove(r.Id)));
      Object.assign(unik, { qemuCodePssMb: (breakdown.codePssKb ?? 0) / MB, qemuGuestPssMb: (breakdown.guestPssKb ?? 0) / MB, daemonPssMb: daemonMem.pssKb / MB });
    }
    // podman
    let container: Side;
    {
      const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
      const names = ports.map((_, i) => `dens${n}-${i}`);
      const t0 = performance.now();
      const started = await Promise.allSettled(names.map((name, i) => podman.runDetached(name, ports[i]!)));
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      const a = await allAnswer(ports, t0);
      await sleep(SETTLE_MS);
      const pids = podman.pids(names.filter((_, i) => started[i]!.status === 'fulfilled'));
      const mems = pids.map((p) => podmanMem(p.appPid, p.conmonPid));
      const pss = mems.reduce((s, m) => s + m.pssKb + m.helperPssKb, 0);
      const rss = mems.reduce((s, m) => s + m.rssKb + m.helperRssKb, 0);
      container = { ...perInstance(n, pss, rss, a.allAnswered && !failed, a.seconds), helperPssPerInstanceMb: mems.reduce((s, m) => s + m.helperPssKb, 0) / MB / n, ...(failed ? { error: String(failed.reason) } : {}) };
      podman.removeAll();
    }
    // host processes
    let processes: Side;
    {
      const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
      const t0 = performance.now();
      const procs: ChildProcess[] = ports.map((p) => spawn(binary, [], { env: { ...process.env, PORT: String(p) }, stdio: 'ignore' }));
      const a = await allAnswer(ports, t0);
      await sleep(SETTLE_MS);
      const m = sumSmaps(procs.map((p) => p.pid!));
      processes = perInstance(n, m.pssKb, m.rssKb, a.allAnswered, a.seconds);
      for (const p of procs) p.kill('SIGKILL');
    }
    // the fields report.ts has read since the first density bench, then the three sides
    rows.push({ instances: n, allAnswered: unik.allAnswered, vmSeconds: unik.seconds, vmRssMb: unik.rssMb, processSeconds: processes.seconds, processRssMb: processes.rssMb, unik, podman: container, processes });
    console.error(`[density] ${n}: unik ${unik.seconds.toFixed(1)} s, ${unik.pssPerInstanceMb.toFixed(1)} MB PSS each; podman ${container.seconds.toFixed(1)} s, ${container.pssPerInstanceMb.toFixed(1)} MB PSS each`);
  }
  const one = rows.find((r) => r.instances === 1);
  const aims: Aim[] = [
    aimAtMost(
      {
        id: 'idle-pss',
        aim: 'host memory of an idle go-http instance, PSS (RSS beside it)',
        value: one ? Number(one.unik.pssPerInstanceMb.toFixed(1)) : null,
        unit: 'MB',
        compares: 'unik: the supervisor and the QEMU below it; podman: the container and its conmon (one of each running)',
        ...(one ? { detail: `RSS ${one.unik.rssPerInstanceMb.toFixed(1)} MB; of the PSS, the supervisor (Node) ${(one.unik.helperPssPerInstanceMb ?? 0).toFixed(1)} MB, TCG's code buffer ${(one.unik as Side & { qemuCodePssMb: number }).qemuCodePssMb.toFixed(1)} MB, the guest's RAM ${(one.unik as Side & { qemuGuestPssMb: number }).qemuGuestPssMb.toFixed(1)} MB; podman: ${one.podman.pssPerInstanceMb.toFixed(1)} MB PSS, ${one.podman.rssPerInstanceMb.toFixed(1)} MB RSS` } : {}),
      },
      24,
    ),
    ...rows.map((r) => ({
      id: `density-${r.instances}`,
      aim: `density: ${r.instances} go-http instance${r.instances > 1 ? 's' : ''} at once, time until all answer and total host memory, beside podman with as many containers`,
      target: 'all answer',
      value: Number(r.unik.seconds.toFixed(2)),
      unit: 's',
      met: r.unik.allAnswered,
      compares: `unik ÷ podman, time until all answer: ${(r.unik.seconds / r.podman.seconds).toFixed(2)}×; total PSS ${r.unik.pssMb.toFixed(0)} MB vs ${r.podman.pssMb.toFixed(0)} MB (${(r.unik.pssMb / r.podman.pssMb).toFixed(1)}×)`,
      detail: `podman: ${r.podman.seconds.toFixed(2)} s${r.podman.allAnswered ? '' : ' (not all answered)'}; RSS unik ${r.unik.rssMb.toFixed(0)} MB, podman ${r.podman.rssMb.toFixed(0)} MB`,
    })),
  ];
  const out = writeModuleResult('density', { machine: host, tcgTbMb: TCG_TB_MB, memoryMb, rows, aims });
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const cell = (s: Side) => `${s.seconds.toFixed(1)} s${s.allAnswered ? '' : ' (not all answered)'} | ${f(s.pssMb)} MB (${f(s.pssPerInstanceMb)} each) | ${f(s.rssMb)} MB`;
  writeReadmeBlock(
    'density-bench',
    [
      `\`npm run bench:density\` on ${host.cores} cores (${host.cpuModel}), QEMU ${host.qemu}, TCG (code buffer ${TCG_TB_MB} MiB), go-http with ${memoryMb} MB; ${new Date().toISOString().slice(0, 10)}. N started at once; time until all answer; host memory once idle (PSS, RSS):`,
      '',
      '| N | unik: all answer | unik PSS | unik RSS | podman: all answer | podman PSS | podman RSS | host processes: all answer | PSS | RSS |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.instances} | ${cell(r.unik)} | ${cell(r.podman)} | ${cell(r.processes)} |`),
      '',
      `Of one unik instance's PSS, its supervisor (Node) is ${rows.map((r) => `${f(r.unik.helperPssPerInstanceMb ?? 0)} MB at N=${r.instances}`).join(', ')}; podman's conmon ${rows.map((r) => `${f(r.podman.helperPssPerInstanceMb ?? 0)} MB`).join(', ')}. unik's daemon itself: ${rows.map((r) => `${f((r.unik as Side & { daemonPssMb: number }).daemonPssMb)} MB`).join(', ')} PSS.`,
    ].join('\n'),
  );
  console.log(`written to ${out}`);
} finally {
  podman.destroy();
  await daemon.stop();
}
