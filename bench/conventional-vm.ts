// The conventional-VM reference: examples/go-http's static binary as a systemd service in a
// minimal Debian 12 root (debootstrap minbase + systemd-sysv + udev), booted with Debian's stock
// cloud kernel and its initramfs-tools initrd, on the same QEMU and accelerator as unik (the one
// unik's own probe, chooseAccel, picks on this host), as a conventional VM is run: `-M q35`, a
// virtio-blk root disk, virtio-net-pci, DHCP from slirp.
//
// Two kinds of start, to set beside unik's two: a cold boot, and a restore from the VM's own QEMU
// snapshot (saved once after the app answered, with QMP `migrate` to a file; restored with
// `-incoming`), as a conventional VM is snapshotted and resumed.
//
// Built by bench/conventional-vm/build-base.sh (debootstrap; a few minutes) and build-disk.sh
// (adds the binary, `mkfs.ext4 -d` into a sparse raw image), cached under
// $UNIK_BENCH_CACHE/conventional-vm/{base,disk}-<hash of the recipe and inputs>, never rebuilt;
// the snapshot beside its disk, in disk-<hash>/snapshot-<hash of disk, QEMU, accelerator, machine>.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Accel } from '../src/base/linux/cmdline.js';
import { chooseAccel, type AccelChoice } from '../src/providers/qemu/accel.js';
import { machineOptions, QEMU_BINARY } from '../src/providers/qemu/args.js';
import { qemuConfinement } from '../src/providers/qemu/confine.js';
import { Qmp } from '../src/providers/qemu/qmp.js';
import { freePort } from '../test/integration/harness.js';
import { BENCH_CACHE, hostInfo, ROOT, rssKb, waitOk } from './lib.js';

const RECIPES = join(ROOT, 'bench/conventional-vm');
export const CVM_CACHE = join(BENCH_CACHE, 'conventional-vm');
/** the QEMU machine, stated in the tables */
export const cvmMachine = (vm: ConventionalVm) => `q35, -accel ${vm.accel} -cpu ${vm.cpu} -smp 1, virtio-blk (raw, snapshot=on) + virtio-net-pci, slirp`;

/**
 * The accelerator unik's daemon picks on this host: the qemu provider's own chooseAccel (with
 * the same confinement probe), given a unik kernel to boot as its probe guest. amd64: the
 * reference's kernel is Debian's amd64 one.
 */
export async function unikAccel(unikKernel: string): Promise<AccelChoice> {
  return chooseAccel('amd64', unikKernel, await qemuConfinement(QEMU_BINARY.amd64.binary));
}

/** -cpu as unik passes it for this accelerator (host under KVM, max under TCG) */
function cpuFor(accel: Accel): string {
  const m = machineOptions('amd64', accel);
  return m[m.indexOf('-cpu') + 1]!;
}

export interface ConventionalVm {
  dir: string;
  kernel: string;
  initrd: string;
  disk: string;
  kernelVersion: string;
  /** bytes of the sparse disk image actually allocated on the host, and its apparent size */
  diskAllocatedBytes: number;
  diskApparentBytes: number;
  /** bytes of the files in the root tree (apparent), the binary included */
  rootTreeBytes: number;
  kernelBytes: number;
  initrdBytes: number;
  baseHash: string;
  diskHash: string;
  /** seconds spent building now; 0 when everything came from the cache */
  buildSeconds: number;
  /** the accelerator and -cpu it runs with: unik's (see unikAccel) */
  accel: Accel;
  cpu: string;
}

const sha = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
};

/** The Debian mirror apt is configured with (deb822 `URIs:` or a one-line `deb` entry). */
export function aptMirror(): string {
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d').filter((f) => /\.(list|sources)$/.test(f)).map((f) => join('/etc/apt/sources.list.d', f)) : [])];
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s*)?)(\S+)/gm)) if (m[1] && !/security/.test(m[1]) && /debian\/?$/.test(m[1])) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

function run(cmd: string, args: string[], log: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(log, 'a');
    const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}); see ${log}`))));
  });
}

/**
 * The conventional VM for `binary`, from the cache or built now (when `build`; otherwise
 * undefined if not cached).
 */
export async function prepareConventionalVm(binary: string, build: boolean, accel: Accel): Promise<ConventionalVm | undefined> {
  const baseScript = readFileSync(join(RECIPES, 'build-base.sh'));
  const diskScript = readFileSync(join(RECIPES, 'build-disk.sh'));
  const baseHash = sha(baseScript);
  const diskHash = sha(baseHash, diskScript, readFileSync(binary));
  const base = join(CVM_CACHE, `base-${baseHash}`);
  const dir = join(CVM_CACHE, `disk-${diskHash}`);
  const t0 = performance.now();
  mkdirSync(CVM_CACHE, { recursive: true });
  if (!existsSync(join(base, 'done'))) {
    if (!build) return undefined;
    const log = `${base}.log`;
    console.error(`conventional VM: building the Debian root with debootstrap (a few minutes, once; log in ${log})`);
    await run('bash', [join(RECIPES, 'build-base.sh'), base, aptMirror()], log);
  }
  if (!existsSync(join(dir, 'done'))) {
    if (!build) return undefined;
    await run('bash', [join(RECIPES, 'build-disk.sh'), base, binary, dir], `${dir}.log`);
  }
  const disk = join(dir, 'disk.img');
  const st = statSync(disk);
  return {
    dir,
    kernel: join(base, 'vmlinuz'),
    initrd: join(base, 'initrd.img'),
    disk,
    kernelVersion: readFileSync(join(base, 'kernel-version'), 'utf8').trim().replace(/^vmlinuz-/, ''),
    diskAllocatedBytes: st.blocks * 512,
    diskApparentBytes: st.size,
    rootTreeBytes: Number(readFileSync(join(dir, 'root-bytes'), 'utf8').trim()),
    kernelBytes: statSync(join(base, 'vmlinuz')).size,
    initrdBytes: statSync(join(base, 'initrd.img')).size,
    baseHash,
    diskHash,
    buildSeconds: (performance.now() - t0) / 1000,
    accel,
    cpu: cpuFor(accel),
  };
}

export interface CvmBoot {
  /** ms from spawning QEMU to the first HTTP 200 on /ping_test; undefined if it never answered */
  ms?: number;
  pid: number;
  /** host RSS of the QEMU process (kB) once the app answers */
  rssKb: number;
  stop(): Promise<void>;
}

/** The command line every start shares (cold, snapshot template, restore): only the disk and -incoming differ. */
function qemuArgs(vm: ConventionalVm, memoryMb: number, port: number, drive: string): string[] {
  return [
    '-M', 'q35', '-accel', vm.accel, '-cpu', vm.cpu, '-smp', '1', '-m', String(memoryMb),
    '-drive', `${drive},if=virtio`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`, '-device', 'virtio-net-pci,netdev=n0',
    '-nographic', '-no-reboot',
    '-kernel', vm.kernel, '-initrd', vm.initrd, '-append', 'root=/dev/vda rw console=ttyS0 panic=-1',
  ];
}

/** Spawns QEMU and times it to the app's first 200; `keep` leaves it running for the caller to stop. */
async function start(args: (port: number) => string[], deadlineMs: number, keep: boolean): Promise<CvmBoot> {
  const port = await freePort();
  const argv = args(port);
  const t0 = performance.now();
  const qemu: ChildProcess = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'ignore', 'ignore'] });
  let exited = false;
  qemu.on('exit', () => (exited = true));
  const ok = await waitOk(`http://127.0.0.1:${port}/ping_test`, deadlineMs, () => exited);
  const ms = ok ? performance.now() - t0 : undefined;
  const rss = ok ? rssKb(qemu.pid!) : 0;
  const stop = async () => {
    if (exited) return;
    qemu.kill('SIGKILL');
    for (let i = 0; i < 50 && !exited; i++) await sleep(20);
  };
  if (!keep || !ok) await stop();
  return { ms, pid: qemu.pid!, rssKb: rss, stop };
}

/**
 * Boots the VM cold (disk opened with snapshot=on, so every boot starts from the same pristine
 * image) and waits for the app.
 */
export function bootConventionalVm(vm: ConventionalVm, memoryMb = 512, deadlineMs = 180_000, keep = false): Promise<CvmBoot> {
  return start((port) => qemuArgs(vm, memoryMb, port, `file=${vm.disk},format=raw,snapshot=on`), deadlineMs, keep);
}

/** changes to how the snapshot is made (part of its cache key) */
const SNAPSHOT_RECIPE = 'qcow2 overlay + live migrate to exec:cat, v2';

export interface CvmSnapshot {
  dir: string;
  /** the disk as it was when saved: a qcow2 overlay over the pristine raw disk */
  overlay: string;
  /** the migration stream: RAM (zero pages elided) and device state */
  state: string;
  stateBytes: number;
  memoryMb: number;
  /** seconds spent making it now; 0 when it came from the cache */
  buildSeconds: number;
}

/**
 * The VM's own snapshot, as one is taken of a conventional VM: boot it once (disk: a qcow2
 * overlay over the raw image, so the disk's state is kept with the RAM's), wait for the app's
 * first 200, then QMP `migrate` to a file. Cached beside the disk, keyed by the disk,
 * the QEMU version, the accelerator, -cpu and memory; undefined if not cached and not `build`.
 */
export async function prepareCvmSnapshot(vm: ConventionalVm, memoryMb: number, build: boolean): Promise<CvmSnapshot | undefined> {
  const key = sha(SNAPSHOT_RECIPE, vm.diskHash, hostInfo().qemu, vm.accel, vm.cpu, String(memoryMb), qemuArgs(vm, memoryMb, 0, '').join(' '));
  const dir = join(vm.dir, `snapshot-${key}`);
  const snap = { dir, overlay: join(dir, 'disk.qcow2'), state: join(dir, 'state'), memoryMb };
  if (existsSync(join(dir, 'done'))) return { ...snap, stateBytes: statSync(snap.state).size, buildSeconds: 0 };
  if (!build) return undefined;
  const t0 = performance.now();
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const overlay = join(work, 'disk.qcow2');
  const state = join(work, 'state');
  const qmpPath = join(work, 'qmp.sock');
  try {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vm.disk, '-F', 'raw', overlay]);
    const b = await start((port) => [...qemuArgs(vm, memoryMb, port, `file=${overlay},format=qcow2`), '-qmp', `unix:${qmpPath},server=on,wait=off`], 300_000, true);
    if (b.ms === undefined) throw new Error('the conventional VM did not answer while its snapshot was being made');
    const qmp = await Qmp.connect(qmpPath, 10_000);
    try {
      // live, not after `stop`: the stream records the run state, and a stopped source would
      // restore paused; the idle guest converges at once and QEMU stops it as the stream completes
      await qmp.execute('migrate', { uri: `exec:cat > '${state}'` });
      for (;;) {
        const m = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        if (m.status === 'completed') break;
        if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`saving the conventional VM failed: ${m.status} ${m['error-desc'] ?? ''}`);
        await sleep(50);
      }
      await qmp.execute('quit').catch(() => undefined);
    } finally {
      qmp.close();
      await b.stop();
    }
    rmSync(qmpPath, { force: true });
    writeFileSync(join(work, 'done'), '');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  return { ...snap, stateBytes: statSync(snap.state).size, buildSeconds: (performance.now() - t0) / 1000 };
}

/**
 * Restores the VM from its snapshot: QEMU reads the migration stream (`-incoming`), its disk the
 * saved overlay opened with snapshot=on (every restore starts from the same state), then the
 * guest resumes where it was saved, the app already listening; timed to the first 200.
 */
export function restoreConventionalVm(vm: ConventionalVm, snap: CvmSnapshot, deadlineMs = 120_000, keep = false): Promise<CvmBoot> {
  return start((port) => [...qemuArgs(vm, snap.memoryMb, port, `file=${snap.overlay},format=qcow2,snapshot=on`), '-incoming', `exec:cat '${snap.state}'`], deadlineMs, keep);
}
