// `create --bundle B --pid-file P ID`: checks the image, prepares the VM (initrd with the boot
// config, network), starts the monitor with QEMU paused, and writes the monitor's pid.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { USER_NET, bootConfigFrame, writeStartInitrd, type BootConfig } from '../../base/linux/contract.js';
import { chooseAccel, hostTscKhz, type AccelChoice } from '../../providers/qemu/accel.js';
import { QEMU_BINARY, qemuArgs } from '../../providers/qemu/args.js';
import { defaultArch, type Arch } from '../../model/arch.js';
import { boundToParent, parentBoundConfinement, qemuConfinement, type Confinement } from '../../providers/qemu/confine.js';
import { SnapshotTemplates, fitsSnapshot, type Network, type Snapshot } from '../../providers/qemu/snapshot.js';
import type { Accel } from '../../base/linux/cmdline.js';
import { RuntimeError, type Ctx } from '../context.js';
import { delegate } from '../delegate.js';
import { ImageError, isUnikRootfs, loadBundleImage, type BundleImage } from '../image.js';
import { cacheDir, entryFor, type CacheEntry } from '../snapshot-cache.js';
import { startSupervisor } from '../../supervisor/client.js';
import { onPath } from '../../util/exec.js';
import { signalNumber } from '../../model/signals.js';
import type { ImageManifest } from '../../model/types.js';
import { writeLaunch, type Launch } from '../../supervisor/launch.js';
import { TAP, plugTap, readPodNet, unplugTap } from '../netns.js';
import { firstNameserver, planGuest, type OciSpec } from '../spec.js';
import { FILES, StateDir, procStart, validateId, type ContainerState } from '../state.js';

/** the node's own architecture: the only one that may get KVM (others are emulated, see runnableArches) */
const HOST_ARCH = defaultArch();
const MONITOR_READY_DEADLINE_MS = 60_000;
// The console (ttyS0) goes to QEMU's own stdout, the task's stdout inherited through the
// supervisor: a `stdio` chardev, not a file one (the shim's stdio may be a pipe, a socket or a
// file; /dev/stdout cannot be opened on a socket). QEMU's stdin is /dev/null.

export async function create(ctx: Ctx): Promise<number> {
  const { args } = ctx;
  const id = validateId(args.operands[0]);
  const bundle = resolve(String(args.flags.bundle ?? process.cwd()));
  let spec: OciSpec;
  try {
    spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
  } catch {
    return delegate(ctx.argv); // runc explains a bad bundle in its own words
  }
  const rootfs = resolve(bundle, spec.root?.path ?? 'rootfs');
  if (!isUnikRootfs(rootfs)) return delegate(ctx.argv);

  const st = new StateDir(ctx.root, id);
  if (st.exists() || existsSync(join(ctx.root, id))) throw new RuntimeError(`container with id exists: ${id}`);
  if (args.flags['console-socket']) throw new RuntimeError('a terminal (ctr run -t, kubectl run -it) is not supported for unikernels: the console is the task\'s stdout');

  const image = loadBundleImage(rootfs);
  const plan = planGuest(spec, image.manifest, id);
  for (const w of plan.warnings) ctx.log.warn(`${id}: ${w}`);

  st.create();
  let net: ContainerState['net'];
  try {
    let guestNet: BootConfig['net'] = { ...USER_NET };
    let tap: { ifname: string; mac?: string } | undefined;
    if (plan.net.kind === 'netns') {
      const pod = readPodNet(plan.net.path);
      plugTap(plan.net.path, pod);
      net = { netns: plan.net.path, ifname: pod.ifname, tap: TAP };
      const dns = (plan.resolvConf && firstNameserver(safeRead(plan.resolvConf))) || pod.gateway;
      guestNet = { ifname: 'eth0', ip: pod.ip, gateway: pod.gateway, dns };
      tap = { ifname: TAP, ...(pod.mac ? { mac: pod.mac } : {}) };
    }

    const arch = image.arch;
    const { binary: qemuBinary, pkg } = QEMU_BINARY[arch];
    if (!onPath(qemuBinary)) throw new RuntimeError(`the unikernel is for ${arch}, and ${qemuBinary}, which runs ${arch} guests, is not installed on this node: apt-get install ${pkg}`);
    // the VM must die with its monitor: QEMU is confined for that (see boundToParent)
    const confinement = parentBoundConfinement(await qemuConfinement(qemuBinary));
    ctx.log.debug(confinement.summary);
    const { accel } = await accelFor(ctx.root, arch, image.kernel, confinement);
    const config: BootConfig = { argv: plan.argv, env: plan.env, cwd: plan.cwd, hostname: plan.hostname, time: Date.now() / 1000, net: { ...guestNet, ...(tap?.mac ? { mac: tap.mac } : {}) }, seed: randomBytes(32), ...imageUser(image.manifest) };
    const common = {
      arch,
      accel,
      tscKhz: hostTscKhz(),
      memoryMb: plan.memoryMb,
      kernel: image.kernel,
      name: `unik-${id}`,
      ports: [],
      controlSocket: FILES.control,
      disks: [],
      qmpSocket: FILES.qmp,
      ...(tap ? { tap } : {}),
      confinement,
    };
    // The image's boot snapshot (made by the first container of this image and memory size):
    // QEMU waits for its device state, then the monitor sends the config and resumes at `start`.
    // (a config too big for the serial line, e.g. a huge environment, goes in a cold boot's initrd)
    const cached = fitsSnapshot(bootConfigFrame(config)) ? await snapshotFor(ctx, image, plan.memoryMb, accel, common.tscKhz, tap ? 'tap' : 'user') : null;
    const snap = cached?.snap;
    let qemu: string[];
    if (cached?.snap) {
      // the restore boots the verified copies the template was made from, not the bundle's files
      qemu = qemuArgs({ ...common, kernel: cached.kernel, initrd: cached.root, memoryFile: { path: cached.snap.ram, shared: false }, incoming: true, waitForConfig: true });
    } else {
      // a cold boot: the image root, then the boot config as a second cpio archive that the
      // kernel unpacks over it (as the QEMU provider does)
      await writeStartInitrd(st.file(FILES.initrd), image.root, config);
      // paused until `start` (QMP cont), as runc's init waits on exec.fifo
      qemu = [...qemuArgs({ ...common, initrd: FILES.initrd }), '-S'];
    }
    const launch: Launch = {
      id,
      // QEMU gets SIGKILL when its supervisor dies, however it dies
      argv: boundToParent(confinement, [...(net ? ['nsenter', `--net=${net.netns}`, '--'] : []), qemuBinary, ...qemu]),
      log: { ...(ctx.args.global.log ? { file: resolve(ctx.args.global.log) } : {}), format: ctx.args.global.logFormat },
      ...(snap ? { restore: { stateFile: snap.state, snapshotDir: snap.dir }, config: { ...config, seed: config.seed!.toString('hex') } } : {}),
      startFifo: FILES.fifo,
      qmpSocket: FILES.qmp,
      controlSocket: FILES.control,
    };
    writeLaunch(st.dir, launch);
    execFileSync('mkfifo', ['-m', '0600', st.file(FILES.fifo)]);

    const state: ContainerState = { id, bundle, rootfs, created: new Date().toISOString(), pid: 0, pidStart: '', annotations: spec.annotations ?? {}, ...(net ? { net } : {}) };
    st.write(state);

    const pid = await startMonitor(st.dir, launch.restore);
    state.pid = pid;
    state.pidStart = procStart(pid);
    st.write(state);
    const pidFile = args.flags['pid-file'];
    if (typeof pidFile === 'string') {
      const abs = resolve(pidFile);
      writeFileSync(abs + '.unik-tmp', String(pid));
      renameSync(abs + '.unik-tmp', abs);
    }
    ctx.log.info(`${id}: created unikernel VM (monitor pid ${pid}, ${arch}, ${plan.memoryMb} MB, ${accel}, network ${net ? `tap in ${net.netns}` : 'user-mode'}, ${snap ? 'restored from a boot snapshot' : 'cold boot'}, QEMU ${confinementWord(confinement)})`);
    return 0;
  } catch (e) {
    if (net) unplugTap(net.netns, net.ifname);
    st.remove();
    throw e;
  }
}

/**
 * Starts the VM's supervisor detached: when create exits it is re-parented to the shim (a
 * subreaper), as runc's init is. It shares create's stdio (the container's) and reports once
 * QEMU is up and paused, waiting for `start`. A snapshot that fails to restore is dropped, so
 * the next create makes a new one.
 */
async function startMonitor(dir: string, restore: Launch['restore']): Promise<number> {
  const { pid, report } = await startSupervisor(dir, { stdio: [0, 1, 2], deadlineMs: MONITOR_READY_DEADLINE_MS });
  if (report.ok) return pid;
  if (report.phase === 'restore' && restore) rmSync(restore.snapshotDir, { recursive: true, force: true });
  throw new RuntimeError(report.message);
}

/**
 * The boot snapshot of this image at this memory size, made now if there is none. They live in
 * UNIK_RUNC_CACHE (default /var/lib/unik-runc/snapshots), keyed by the sha256 of the image's
 * kernel and root, hashed at every create (see snapshot-cache.ts), so every container of the
 * same bytes shares one and no other image can restore it. Null (cold boot) if it cannot be
 * made: the reason is in the runtime log.
 */
async function snapshotFor(ctx: Ctx, image: BundleImage, memoryMb: number, accel: Accel, tscKhz: number | undefined, network: Network): Promise<{ snap: Snapshot | null; kernel: string; root: string }> {
  const started = Date.now();
  let entry: CacheEntry;
  try {
    entry = await entryFor(image.kernel, image.root);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    ctx.log.warn(`the boot snapshot cache ${cacheDir()} cannot be used, booting cold: ${(e as Error).message}`);
    return { snap: null, kernel: image.kernel, root: image.root };
  }
  ctx.log.debug(`${image.manifest.name}: kernel and root hashed in ${Date.now() - started} ms: boot snapshot key ${entry.key}`);
  // the templates' short-lived sockets go in the cache's own private folder (short paths)
  const templates = new SnapshotTemplates(cacheDir(), (m) => ctx.log.warn(m));
  const snap = await templates.ensure({ dir: entry.dir, kernel: entry.kernel, root: entry.root, name: image.manifest.name || entry.key.slice(0, 12), arch: image.arch }, memoryMb, accel, tscKhz, network);
  return { snap, kernel: entry.kernel, root: entry.root };
}

function confinementWord(c: Confinement): string {
  return `${c.sandbox ? 'under seccomp' : 'UNCONFINED'}${c.user ? `, as ${c.user.name}` : ''}`;
}

/** KVM or TCG, probed once per --root (a KVM probe boots a guest) and kept beside the state. */
async function accelFor(root: string, arch: Arch, kernel: string, confinement: Confinement): Promise<AccelChoice> {
  // an emulated architecture is TCG without a probe
  if (arch !== HOST_ARCH) return chooseAccel(arch, kernel, confinement);
  const file = join(root, '.unik', 'accel.json');
  if (!process.env.UNIK_ACCEL) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as AccelChoice;
    } catch {
      /* not probed yet */
    }
  }
  const c = await chooseAccel(arch, kernel, confinement);
  try {
    writeFileSync(file, JSON.stringify(c) + '\n');
  } catch {
    /* next time again */
  }
  return c;
}

/** The image's user and stop signal, as the boot config carries them (checked by manifest-check.ts). */
function imageUser(m: ImageManifest): Pick<BootConfig, 'user' | 'stopSignal'> {
  return { ...(m.user ? { user: m.user } : {}), ...(m.stopSignal ? { stopSignal: signalNumber(m.stopSignal) } : {}) };
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}
