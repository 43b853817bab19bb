// `npm run bench` (first module): the core figures, each beside its references, in the same run.
//   boot:   POST /instances/run → first HTTP 200 of examples/go-http, like with like:
//           - restored from unik's boot snapshot, beside the conventional VM (bench/conventional-vm.ts:
//             Debian cloud kernel + debootstrap root with systemd) restored from its own QEMU
//             snapshot (migration stream, `-incoming`);
//           - cold (a second daemon with UNIK_SNAPSHOTS=0), beside the conventional VM's cold boot;
//           both VMs on the accelerator unik's daemon picks (its own probe, chooseAccel); and, as a
//           user meets them, the same static binary in a podman container (bench/container.ts) and
//           as a plain host process. Interleaved round by round (BENCH_RUNS rounds, default 5).
//   memory: host RSS of each once it answers (+2 s), and the smallest -m / MemoryMb at which
//           unik and the conventional VM still answer (bisection).
//   size:   unik image (kernel + initramfs) against the VM's disk, kernel and initrd, the
//           container image and the binary alone.
//   build:  cold and warm `unik push` against `go build` alone, timed on the daemon with snapshots
//           off: it starts no template boot after a build, so nothing runs beside the timed builds.
//   aims:   the figures the aims table (bench/report.ts) reads: see `aims` below.
// BENCH_SMOKE=1 / --smoke: one round, the conventional VM only if cached (its snapshot is made
// once if missing), one memory probe.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { CONTAINER_RUNTIME, PodmanRef } from './container.js';
import { bootConventionalVm, cvmMachine, prepareConventionalVm, prepareCvmSnapshot, restoreConventionalVm, unikAccel, type ConventionalVm, type CvmSnapshot } from './conventional-vm.js';
import { coreAims } from './report.js';
import { processTree } from '../src/providers/qemu/state-receiver.js';
import { sumSmaps } from './memory.js';
import { buildGoBinary, hostInfo, rssKb, RUNS, SMOKE, smallestMemory, startDaemon, stats, time, waitForTemplate, waitOk, writeModuleResult, type Stats } from './lib.js';

const SETTLE_MS = 2000; // RSS is read this long after the first 200
const s = (ms: number) => ms / 1000;
const statsS = (ms: number[]) => (ms.length ? stats(ms.map(s)) : undefined);
const statsMb = (kb: number[]) => (kb.length ? stats(kb.map((k) => k / 1024)) : undefined);

const daemon = await startDaemon('core');
const { api, home } = daemon;
// the same image booted cold every time: snapshots off
const coldDaemon = await startDaemon('core-cold', { UNIK_SNAPSHOTS: '0' });
const podman = new PodmanRef();
let binDir = '';
try {
  const info = hostInfo();

  // build, timed on the daemon with snapshots off: a build there starts no background template
  // boot (QemuProvider.prepare), so neither the timed builds nor go build share the CPU with one.
  // Its UNIK_HOME is fresh, so Go's build cache is empty for the first; go build gets an empty cache too.
  const push = (force: boolean) => coldDaemon.build('go-http', 'go-http', `?lang=go&force=${force}`);
  const [coldMs] = await time(() => push(false));
  const warm: number[] = [];
  for (let i = 0; i < (SMOKE ? 1 : 3); i++) warm.push((await time(() => push(true)))[0]);
  // outside every daemon's UNIK_HOME: a daemon owns its home's names (a file there broke its next build)
  binDir = mkdtempSync(join(tmpdir(), 'unik-bench-core-'));
  const binary = join(binDir, 'go-http');
  const gocache = mkdtempSync(join(tmpdir(), 'gocache-'));
  const [goColdMs] = await time(async () => buildGoBinary(binary, gocache));
  const goWarm: number[] = [];
  for (let i = 0; i < (SMOKE ? 1 : 3); i++) goWarm.push((await time(async () => buildGoBinary(binary, gocache)))[0]);
  rmSync(gocache, { recursive: true, force: true });

  // the image the snapshot boots restore, and its template made before anything is timed
  const image = await daemon.build('go-http', 'go-http', '?lang=go');
  const templateMs = await waitForTemplate(daemon, image);
  const manifest = JSON.parse(readFileSync(join(home, 'images', image.Id, 'manifest.json'), 'utf8')) as { kernel: { file: string; sizeBytes: number }; root: { sizeBytes: number } };
  const binaryBytes = readFileSync(binary).length;
  // the accelerator unik picks here, by its own probe: the conventional VM runs on the same one
  const accel = await unikAccel(join(home, 'images', image.Id, manifest.kernel.file));

  // the references: the container image now; the conventional VM from its cache or built once
  const containerImageBytes = podman.setup(binary);
  let cvm: ConventionalVm | undefined;
  let cvmSkipped = '';
  try {
    cvm = await prepareConventionalVm(binary, !SMOKE, accel.accel);
    if (!cvm) cvmSkipped = 'not cached (smoke mode does not build it; run `npm run bench` once)';
  } catch (e) {
    cvmSkipped = `could not build: ${(e as Error).message}`;
  }
  if (cvmSkipped) console.error(`conventional VM skipped: ${cvmSkipped}`);
  // its own snapshot, for the restore beside unik's (made once, cached beside its disk)
  let cvmSnap: CvmSnapshot | undefined;
  let cvmSnapSkipped = cvm ? '' : cvmSkipped;
  if (cvm) {
    try {
      cvmSnap = await prepareCvmSnapshot(cvm, 512, true);
    } catch (e) {
      cvmSnapSkipped = `its snapshot could not be made: ${(e as Error).message}`;
      console.error(`conventional VM restore skipped: ${cvmSnapSkipped}`);
    }
  }

  // unik: run → first 200; RSS of the VM process
  async function unikBoot(memoryMb?: number, deadlineMs = 120_000, measure = false, on = api): Promise<{ ms?: number; rss: number }> {
    const api = on;
    const hp = await freePort();
    const t0 = performance.now();
    const r = await fetch(`${api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'go-http', Ports: [`${hp}:8080`], ...(memoryMb ? { MemoryMb: memoryMb } : {}) }) });
    if (r.status !== 201) {
      if (memoryMb) return { rss: 0 }; // e.g. the guest died while booting with this little memory
      throw new Error(`run failed: ${r.status} ${await r.text()}`);
    }
    const inst = (await r.json()) as { Id: string; Pid: number };
    const gone = async () => ['stopped', 'error'].includes(((await (await fetch(`${api}/instances/${inst.Id}`)).json()) as { State: string }).State);
    const ok = await waitOk(`http://127.0.0.1:${hp}/ping_test`, deadlineMs, gone);
    const ms = ok ? performance.now() - t0 : undefined;
    let rss = 0;
    if (ok && measure) {
      await sleep(SETTLE_MS);
      // the instance as the host pays for it: its supervisor (the API's Pid) and the QEMU below it
      rss = sumSmaps(processTree(inst.Pid)).rssKb;
    }
    await fetch(`${api}/instances/${inst.Id}?force=true`, { method: 'DELETE' });
    return { ms, rss };
  }

  const unik: number[] = [], unikRss: number[] = [];
  const cold: number[] = [], coldRss: number[] = [];
  const ctr: number[] = [], ctrRss: number[] = [], conmonRss: number[] = [], appRss: number[] = [];
  const vm: number[] = [], vmRss: number[] = [];
  const vmRestore: number[] = [], vmRestoreRss: number[] = [];
  const nat: number[] = [], natRss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const u = await unikBoot(undefined, 120_000, true);
    if (u.ms === undefined) throw new Error('unik go-http did not answer');
    unik.push(u.ms);
    unikRss.push(u.rss);
    const uc = await unikBoot(undefined, 120_000, true, coldDaemon.api);
    if (uc.ms === undefined) throw new Error('unik go-http (cold boot) did not answer');
    cold.push(uc.ms);
    coldRss.push(uc.rss);

    const c = await podman.boot(60_000, true);
    if (c.ms === undefined) throw new Error('the podman container did not answer');
    ctr.push(c.ms);
    await sleep(SETTLE_MS);
    const cr = podman.rssKb(c);
    conmonRss.push(cr.conmonKb);
    appRss.push(cr.appKb);
    ctrRss.push(cr.conmonKb + cr.appKb);
    c.stop();

    if (cvm) {
      const b = await bootConventionalVm(cvm, 512, 240_000, true);
      if (b.ms === undefined) throw new Error('the conventional VM did not answer');
      vm.push(b.ms);
      await sleep(SETTLE_MS);
      vmRss.push(rssKb(b.pid));
      await b.stop();
    }
    if (cvm && cvmSnap) {
      const b = await restoreConventionalVm(cvm, cvmSnap, 120_000, true);
      if (b.ms === undefined) throw new Error('the conventional VM did not answer after its restore');
      vmRestore.push(b.ms);
      await sleep(SETTLE_MS);
      const r = rssKb(b.pid);
      // 0: its QEMU was gone a few seconds after the first answer (not explained yet): no figure rather than a false one
      if (r) vmRestoreRss.push(r);
      else console.error('the restored conventional VM exited after its first answer: its RSS is not counted');
      await b.stop();
    }

    const hp = await freePort();
    const t0 = performance.now();
    const p = spawn(binary, [], { env: { ...process.env, PORT: String(hp) }, stdio: 'ignore' });
    if (!(await waitOk(`http://127.0.0.1:${hp}/ping_test`, 30_000))) throw new Error('the host process did not answer');
    nat.push(performance.now() - t0);
    await sleep(SETTLE_MS);
    natRss.push(rssKb(p.pid!));
    p.kill('SIGKILL');
    console.error(`round ${i + 1}/${RUNS}: unik restore ${s(unik.at(-1)!).toFixed(2)} s, cold ${s(cold.at(-1)!).toFixed(2)} s; container ${s(ctr.at(-1)!).toFixed(2)} s${cvm ? `; conventional VM cold ${s(vm.at(-1)!).toFixed(2)} s` : ''}${cvmSnap ? `, restore ${s(vmRestore.at(-1)!).toFixed(2)} s` : ''}; process ${s(nat.at(-1)!).toFixed(3)} s`);
  }

  // the daemon's own words for its choice (made at its first run), beside the bench's probe
  const daemonAccel = ((await fetch(`${api}/providers`).then((r) => r.json())) as { Reason: string }[])[0]?.Reason ?? '';

  // memory: the smallest that still answers (bisection, coarse)
  const unikMin = await smallestMemory(async (mb) => (await unikBoot(mb, 60_000)).ms !== undefined, 8, image.RunSpec.DefaultInstanceMemory, 8, SMOKE ? 1 : 4);
  console.error(`unik smallest memory: ${unikMin.mb} MB (${JSON.stringify(unikMin.probes)})`);
  let vmMin: Awaited<ReturnType<typeof smallestMemory>> | undefined;
  if (cvm && !SMOKE) {
    // a failing boot (OOM, or the initramfs does not fit) ends in a panic (-no-reboot) or hangs: deadline 4x the median boot
    const deadline = Math.max(60_000, 4 * stats(vm).median);
    vmMin = await smallestMemory(async (mb) => (await bootConventionalVm(cvm!, mb, deadline)).ms !== undefined, 32, 512, 16, 5);
    console.error(`conventional VM smallest memory: ${vmMin.mb} MB (${JSON.stringify(vmMin.probes)})`);
  }

  const result = {
    machine: { ...info, accel: daemonAccel, podman: podman.version() },
    accel: { chosen: accel.accel, reason: accel.reason, daemon: daemonAccel },
    runs: RUNS,
    rssSettleMs: SETTLE_MS,
    unik: {
      imageBytes: image.SizeBytes,
      kernelBytes: manifest.kernel.sizeBytes,
      rootBytes: manifest.root.sizeBytes,
      defaultMemoryMb: image.RunSpec.DefaultInstanceMemory,
      bootS: statsS(unik),
      rssMb: statsMb(unikRss),
      coldBootS: statsS(cold),
      coldRssMb: statsMb(coldRss),
      minMemoryMb: unikMin.mb,
      minMemoryProbes: unikMin.probes,
      buildColdS: s(coldMs),
      buildWarmS: statsS(warm),
      buildTimedOn: 'daemon with UNIK_SNAPSHOTS=0: no template boot after a build',
      templateWaitS: s(templateMs),
    },
    goBuild: { coldS: s(goColdMs), warmS: statsS(goWarm) },
    process: { binaryBytes, bootS: statsS(nat), rssMb: statsMb(natRss) },
    container: { runtime: CONTAINER_RUNTIME, imageBytes: containerImageBytes, bootS: statsS(ctr), rssMb: statsMb(ctrRss), conmonRssMb: statsMb(conmonRss), appRssMb: statsMb(appRss) },
    conventionalVm: cvm
      ? {
          machine: cvmMachine(cvm),
          accel: cvm.accel,
          cpu: cvm.cpu,
          memoryMb: 512,
          kernel: cvm.kernelVersion,
          diskAllocatedBytes: cvm.diskAllocatedBytes,
          diskApparentBytes: cvm.diskApparentBytes,
          rootTreeBytes: cvm.rootTreeBytes,
          kernelBytes: cvm.kernelBytes,
          initrdBytes: cvm.initrdBytes,
          cache: cvm.dir,
          buildS: cvm.buildSeconds,
          bootS: statsS(vm),
          rssMb: statsMb(vmRss),
          restoreS: statsS(vmRestore),
          restoreRssMb: statsMb(vmRestoreRss),
          snapshot: cvmSnap ? { memoryMb: cvmSnap.memoryMb, stateBytes: cvmSnap.stateBytes, buildS: cvmSnap.buildSeconds, dir: cvmSnap.dir, how: 'QMP migrate (live) to a file once the app answered; restored with -incoming, disk a qcow2 overlay saved with it (snapshot=on)' } : { skipped: cvmSnapSkipped },
          minMemoryMb: vmMin?.mb,
          minMemoryProbes: vmMin?.probes,
        }
      : { skipped: cvmSkipped },
  };
  const out = writeModuleResult('core', { ...result, aims: coreAims(result) });

  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
  const f = (x: Stats | undefined, d = 2) => (x ? `${x.median.toFixed(d)} (${x.min.toFixed(d)}–${x.max.toFixed(d)})` : '—');
  console.log(`\nunik core benchmark — ${info.cores} x ${info.cpuModel}, QEMU ${info.qemu}; ${daemonAccel}\n`);
  console.log(`| go-http | unik | conventional VM | container | host process |`);
  console.log('|---|---|---|---|---|');
  console.log(`| restore from a snapshot → first HTTP 200, s (median of ${RUNS}, min–max) | ${f(result.unik.bootS)} | ${f(result.conventionalVm.restoreS)} | — | — |`);
  console.log(`| cold start → first HTTP 200, s | ${f(result.unik.coldBootS)} | ${f(result.conventionalVm.bootS)} | ${f(result.container.bootS)} | ${f(result.process.bootS, 3)} |`);
  console.log(`| host RSS once answering, MB (restored / cold; unik: its supervisor and QEMU) | ${f(result.unik.rssMb, 0)} / ${f(result.unik.coldRssMb, 0)} | ${f(result.conventionalVm.restoreRssMb, 0)} / ${f(result.conventionalVm.rssMb, 0)} | ${f(result.container.rssMb, 1)} (conmon + app) | ${f(result.process.rssMb, 1)} |`);
  console.log(`| smallest memory that answers | ${result.unik.minMemoryMb} MB | ${result.conventionalVm.minMemoryMb ?? '—'}${result.conventionalVm.minMemoryMb ? ' MB' : ''} | — | — |`);
  console.log(`| size | ${mb(result.unik.imageBytes)} image | ${cvm ? `${mb(cvm.diskAllocatedBytes)} disk allocated (root tree ${mb(cvm.rootTreeBytes)}), kernel + initrd ${mb(cvm.kernelBytes + cvm.initrdBytes)}` : '—'} | ${mb(containerImageBytes)} image | ${mb(binaryBytes)} binary |`);
  console.log(`| build cold / warm, s (snapshots off: no template boot beside it) | ${result.unik.buildColdS.toFixed(2)} / ${f(result.unik.buildWarmS)} | — | — | go build ${result.goBuild.coldS.toFixed(2)} / ${f(result.goBuild.warmS)} |`);
  console.log(`\nconventional VM: ${cvm ? `${cvmMachine(cvm)}, -m 512, kernel ${cvm.kernelVersion}; restore: ${cvmSnap ? 'its own QEMU snapshot (migration stream)' : cvmSnapSkipped}` : cvmSkipped}; container: ${CONTAINER_RUNTIME}; accelerator: ${accel.reason}`);
  console.log(`written to ${out}`);
} finally {
  podman.destroy();
  if (binDir) rmSync(binDir, { recursive: true, force: true });
  await daemon.stop();
  await coldDaemon.stop();
}

