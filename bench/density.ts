// `npm run bench:density`: launch 1, 5 and 10 instances at once; time until every one answers
// /ping_test, and the host memory (RSS) of their VM processes — beside the same number of host
// processes of the same Go binary, in the same run.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { buildGoBinary, rssKb, SMOKE, startDaemon, writeModuleResult } from './lib.js';

const COUNTS = (process.env.BENCH_COUNTS ?? (SMOKE ? '1,2' : '1,5,10')).split(',').map(Number);

async function answered(port: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/ping_test`, { signal: AbortSignal.timeout(250) });
      if (r.status === 200) return true;
    } catch {
      /* not yet */
    }
    await sleep(20);
  }
  return false;
}

const daemon = await startDaemon('density');
try {
  await daemon.build('app', 'go-http');
  const binary = join(daemon.home, 'native');
  buildGoBinary(binary);

  const rows = [];
  for (const n of COUNTS) {
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
    let t = Date.now();
    const runs = await Promise.all(ports.map((p, i) => fetch(`${daemon.api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'app', InstanceName: `d${n}-${i}`, Ports: [`${p}:8080`] }) }).then((r) => r.json() as Promise<{ Id: string; Pid: number }>)));
    const ok = (await Promise.all(ports.map((p) => answered(p, Date.now() + 180_000)))).every(Boolean);
    const vmMs = Date.now() - t;
    const vmRssMb = runs.reduce((s, r) => s + rssKb(r.Pid), 0) / 1024;
    for (const r of runs) await fetch(`${daemon.api}/instances/${r.Id}?force=true`, { method: 'DELETE' });

    const nports = await Promise.all(Array.from({ length: n }, () => freePort()));
    t = Date.now();
    const procs: ChildProcess[] = nports.map((p) => spawn(binary, [], { env: { ...process.env, PORT: String(p) }, stdio: 'ignore' }));
    await Promise.all(nports.map((p) => answered(p, Date.now() + 30_000)));
    const procMs = Date.now() - t;
    const procRssMb = procs.reduce((s, p) => s + rssKb(p.pid!), 0) / 1024;
    for (const p of procs) p.kill('SIGKILL');
    rows.push({ instances: n, allAnswered: ok, vmSeconds: vmMs / 1000, vmRssMb, processSeconds: procMs / 1000, processRssMb: procRssMb });
  }
  const out = writeModuleResult('density', { rows });
  console.log('\nDensity: N go-http instances launched at once (TCG here)\n');
  console.log('| N | all answer after | host RSS of the VMs | reference: N host processes | their RSS |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.instances} | ${r.vmSeconds.toFixed(2)} s${r.allAnswered ? '' : ' (not all!)'} | ${r.vmRssMb.toFixed(0)} MB (${(r.vmRssMb / r.instances).toFixed(0)} MB each) | ${r.processSeconds.toFixed(2)} s | ${r.processRssMb.toFixed(0)} MB |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
