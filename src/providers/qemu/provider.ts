import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnikError, conflict, failedPrecondition, internal, invalid, unavailable } from '../../model/errors.js';
import { command, startSupervisor } from '../../supervisor/client.js';
import { SupervisorSpares, type Spare } from '../../supervisor/spare.js';
import { STATUS_FILE, procStart, readLaunch, readStatus, supervisorAlive, writeLaunch, type Launch, type SupervisorStatus } from '../../supervisor/launch.js';
import type { LaunchReport } from '../../supervisor/supervise.js';
import type { UnikPaths } from '../../model/paths.js';
import type { HostCheck, ImageRecord, InstanceRecord, InstanceSpec } from '../../model/types.js';
import { bootConfigFrame, writeStartInitrd } from '../../base/linux/contract.js';
import type { Attachments, Observed, Provider, ProviderInfo } from '../types.js';
import { instanceBootConfig } from '../boot-config.js';
import { onPath } from '../../util/exec.js';
import { chooseAccel, hostTscKhz, type AccelChoice } from './accel.js';
import { QEMU_BINARY, diskSerial, qemuArgs, rootDiskArgs } from './args.js';
import { archOf, type Arch } from '../../model/arch.js';
import { qemuChecks } from './checks.js';
import { SNAPSHOTS_ON, SnapshotTemplates, fitsSnapshot, type TemplateSource } from './snapshot.js';
import { boundToParent, privateDir, qemuConfinement, type Confinement } from './confine.js';
import { checkPortsFree } from './ports.js';
import { isOurVm, qemuUnder } from './process.js';

/** the VM runs within this long of its supervisor starting (a restore included), or the launch failed */
const LAUNCH_DEADLINE_MS = 45_000;
/** a console file is rotated (to console.log.1) past this size */
const CONSOLE_MAX_BYTES = Number(process.env.UNIK_CONSOLE_MAX_BYTES) || 16 * 1024 * 1024;

/** Local VMs under QEMU (microvm on amd64, virt on arm64), one QEMU process per instance. */
export class QemuProvider implements Provider {
  readonly name = 'qemu';
  readonly infrastructure = 'QEMU';
  readonly arches: readonly Arch[] = ['amd64', 'arm64'];
  /** the accelerator of each architecture, chosen once */
  private readonly accel = new Map<Arch, Promise<AccelChoice>>();
  private readonly templates: SnapshotTemplates;
  /** a supervisor started ahead of the next run */
  private readonly spares: SupervisorSpares;

  constructor(
    private readonly paths: UnikPaths,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.templates = new SnapshotTemplates(paths.sockets, log);
    this.spares = new SupervisorSpares(paths.instances);
  }

  async info(): Promise<ProviderInfo> {
    const base = { name: this.name, infrastructure: this.infrastructure };
    if (!this.arches.some((a) => onPath(QEMU_BINARY[a].binary)))
      return { ...base, available: false, reason: `no QEMU is installed (apt-get install ${this.arches.map((a) => QEMU_BINARY[a].pkg).join(' ')})` };
    const details: string[] = [];
    for (const arch of this.arches) {
      const q = QEMU_BINARY[arch];
      const chosen = this.accel.get(arch);
      if (!onPath(q.binary)) details.push(`${arch}: ${q.binary} is not installed (apt-get install ${q.pkg})`);
      else details.push(`${arch}: ${chosen ? (await chosen).reason : 'acceleration is chosen at the first run (KVM if a probe guest boots, else TCG)'}`);
    }
    return { ...base, available: true, reason: details.join('; ') };
  }

  checks(): Promise<HostCheck[]> {
    return qemuChecks({
      arches: this.arches,
      kernelsDir: this.paths.kernels,
      chosenAccel: (arch) => this.accel.get(arch),
      chooseAccel: (arch, kernel) => this.chooseAccel(arch, kernel),
      confine: (qemu) => this.confine(qemu),
    });
  }

  async preflight(spec: InstanceSpec): Promise<void> {
    if (spec.memoryMb < 16 || spec.memoryMb > 65536) throw invalid('BAD_MEMORY', `memory ${spec.memoryMb} MB is out of range (16-65536)`);
    await checkPortsFree(spec.ports);
  }

  dir(inst: InstanceRecord): string {
    return join(this.paths.instances, inst.id);
  }

  private socket(inst: InstanceRecord): string {
    return join(this.paths.sockets, `${inst.id.slice(0, 16)}.ctl`);
  }

  private qmpSocket(inst: InstanceRecord): string {
    return join(this.paths.sockets, `${inst.id.slice(0, 16)}.qmp`);
  }

  logFile(inst: InstanceRecord): string {
    return join(this.dir(inst), 'console.log');
  }

  private commandSocket(inst: InstanceRecord): string {
    return join(this.paths.sockets, `${inst.id.slice(0, 16)}.sup`);
  }

  /** Boots a new image's snapshot template at its default memory, so its first run is a restore too. */
  prepare(image: ImageRecord): void {
    if (!SNAPSHOTS_ON) return;
    const arch = archOf(image.manifest.arch);
    if (!arch || !onPath(QEMU_BINARY[arch].binary)) return;
    const kernel = join(this.paths.images, image.id, image.manifest.kernel.file);
    void this.chooseAccel(arch, kernel)
      .then(({ accel }) => this.templates.ensure(this.templateSource(image, arch), image.manifest.defaultMemoryMb, accel, hostTscKhz()))
      .catch(() => {});
  }

  /** A supervisor already started (spare.ts), if one is waiting. */
  private takeSpare(): { spare?: Spare } {
    const spare = this.spares.take();
    return spare ? { spare } : {};
  }

  close(): void {
    this.spares.close();
  }

  /** The accelerator's probe guest (0.2-0.4 s under TCG here), made at the daemon's start rather than in the first run after it. */
  warmUp(images: ImageRecord[]): void {
    const seen = new Set<Arch>();
    for (const image of images) {
      const arch = archOf(image.manifest.arch);
      const kernel = join(this.paths.images, image.id, image.manifest.kernel.file);
      // a damaged image (its kernel gone) must not decide the accelerator for the daemon's life
      if (!arch || seen.has(arch) || !this.arches.includes(arch) || !onPath(QEMU_BINARY[arch].binary) || !existsSync(kernel)) continue;
      seen.add(arch);
      void this.chooseAccel(arch, kernel).catch(() => {});
    }
  }

  private templateSource(image: ImageRecord, arch: Arch): TemplateSource {
    const dir = join(this.paths.images, image.id);
    const rootDisk = image.manifest.rootDisk ? join(dir, image.manifest.rootDisk.file) : undefined;
    return { dir: join(dir, 'snapshots'), kernel: join(dir, image.manifest.kernel.file), root: join(dir, image.manifest.root.file), ...(rootDisk ? { rootDisk } : {}), name: image.name, arch };
  }

  /** How this QEMU binary is confined here, probed and logged once per binary. */
  private readonly confinements = new Map<string, Promise<Confinement>>();
  private confine(qemu: string): Promise<Confinement> {
    let c = this.confinements.get(qemu);
    if (!c) {
      c = qemuConfinement(qemu).then((x) => {
        this.log(`${qemu}: ${x.summary}`);
        return x;
      });
      this.confinements.set(qemu, c);
    }
    return c;
  }

  private chooseAccel(arch: Arch, kernel: string): Promise<AccelChoice> {
    let a = this.accel.get(arch);
    if (!a) {
      a = this.confine(QEMU_BINARY[arch].binary).then((confinement) => chooseAccel(arch, kernel, confinement)).then((c) => {
        if (c.accel === 'tcg') this.log(`warning: ${c.reason}`);
        return c;
      });
      this.accel.set(arch, a);
    }
    return a;
  }

  /** The image's architecture, if this host can run it: never started on the wrong QEMU. */
  private archOf(image: ImageRecord): { arch: Arch; qemu: string } {
    const arch = archOf(image.manifest.arch);
    if (!arch || !this.arches.includes(arch))
      throw failedPrecondition('UNSUPPORTED_ARCH', `image ${image.name} is built for ${String(image.manifest.arch).slice(0, 32)}, which unik cannot run`, `unik runs ${this.arches.join(' and ')} images: rebuild it with --arch`);
    const q = QEMU_BINARY[arch];
    if (!onPath(q.binary)) throw unavailable('NO_QEMU', `image ${image.name} is for ${arch}, and ${q.binary}, which runs ${arch} guests, is not installed`, `apt-get install ${q.pkg} (or run \`npm run setup\`)`);
    return { arch, qemu: q.binary };
  }

  async start(inst: InstanceRecord, image: ImageRecord, { volumes, nic }: Attachments, onExit: () => void): Promise<{ pid: number; accel: string; boot: 'restore' | 'cold' }> {
    const dir = this.dir(inst);
    const imageDir = join(this.paths.images, image.id);
    const kernel = join(imageDir, image.manifest.kernel.file);
    const root = join(imageDir, image.manifest.root.file);
    const rootDisk = image.manifest.rootDisk ? join(imageDir, image.manifest.rootDisk.file) : undefined;
    for (const f of [kernel, root, ...(rootDisk ? [rootDisk] : [])])
      if (!existsSync(f)) throw unavailable('IMAGE_FILES_MISSING', `image ${image.name} is damaged: ${f} is missing`, `rebuild it: unik push ${image.name} PATH --force`);
    const { arch, qemu } = this.archOf(image);
    const { accel } = await this.chooseAccel(arch, kernel);
    const confinement = await this.confine(qemu);

    // root's alone: the launch there holds the app's env and seed (QEMU opens what it needs before it drops root)
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // QEMU binds its monitor and control sockets here as root: only root may reach them
    await privateDir(this.paths.sockets);
    const socket = this.socket(inst);
    if (socket.length > 100) throw invalid('HOME_TOO_LONG', `UNIK_HOME is too long for a control socket path (${socket})`, 'use a shorter UNIK_HOME');
    await rm(socket, { force: true });

    const config = instanceBootConfig(inst, image, { volumes, ...(nic ? { nic } : {}) });
    const common = {
      arch,
      accel,
      tscKhz: hostTscKhz(),
      memoryMb: inst.spec.memoryMb,
      kernel,
      name: `unik-${inst.name}`,
      // bridged: QEMU makes the tap and the supervisor relays published ports; user mode: QEMU forwards them
      ports: nic ? [] : inst.spec.ports,
      // a --slim profiling boot runs an image's code during a build: it reaches nothing, not even the host
      ...(inst.spec.profile ? { isolatedNet: true } : {}),
      ...(nic ? { tap: { ifname: nic.tap, mac: nic.mac } } : {}),
      controlSocket: socket,
      qmpSocket: this.qmpSocket(inst),
      // the root disk first: a restore has the template's devices in the template's order
      disks: [...rootDiskArgs(rootDisk), ...volumes.map((v) => ({ file: v.file, serial: diskSerial(v.id) }))],
      // always the full confinement (the drop to an unprivileged user included)
      confinement,
    };

    // bridged: the supervisor puts the tap on the bridge and relays published ports to the guest
    const guestIp = nic?.ip.split('/')[0];
    const net: Pick<Launch, 'nic' | 'proxies'> = nic
      ? { nic: { tap: nic.tap, bridge: nic.bridge }, proxies: inst.spec.ports.map((p) => ({ ...p, guestIp: guestIp! })) }
      : {};

    // A restore from the image's boot snapshot when the instance fits one: no volumes (the
    // template has no disks) and a config small enough for the serial control channel.
    // (a --slim profiling boot is the image's only one: no template is worth making for it)
    if (volumes.length === 0 && !inst.spec.profile && fitsSnapshot(bootConfigFrame(config))) {
      const snap = await this.templates.ensure(this.templateSource(image, arch), inst.spec.memoryMb, accel, common.tscKhz, nic ? 'tap' : 'user');
      if (snap) {
        const argv = qemuArgs({ ...common, initrd: root, memoryFile: { path: snap.ram, shared: false }, incoming: true, waitForConfig: true });
        const restore = { stateFile: snap.state, snapshotDir: snap.dir };
        const launchConfig = { ...config, seed: config.seed!.toString('hex') };
        const r = await this.launch(inst, [qemu, ...argv], onExit, { restore, config: launchConfig, ...net });
        if (r.ok) return { pid: r.pid, accel, boot: 'restore' };
        if (r.report.phase !== 'restore') throw this.launchError(inst, r.report);
        this.log(`restoring ${image.name} from its boot snapshot failed, booting cold: ${r.report.message}`);
        await this.templates.invalidate(snap);
      }
    }

    // A cold boot. The per-start initrd: the image root, then the boot config (argv, env,
    // network) as a second cpio archive, which the kernel unpacks over the first.
    const initrd = join(dir, 'initrd');
    await writeStartInitrd(initrd, root, config);
    // paused until its supervisor has it all in hand, then resumed
    const r = await this.launch(inst, [qemu, ...qemuArgs({ ...common, initrd }), '-S'], onExit, net);
    if (!r.ok) throw this.launchError(inst, r.report);
    return { pid: r.pid, accel, boot: 'cold' };
  }

  /**
   * Starts the instance's supervisor, which starts QEMU bound to itself (it dies with it) and
   * reports once the VM runs. The supervisor outlives the daemon (the daemon reattaches after a
   * restart), but not while launching: if the daemon dies then, it undoes the VM itself.
   */
  private async launch(inst: InstanceRecord, qemuArgv: string[], onExit: () => void, extra: Pick<Launch, 'restore' | 'config' | 'nic' | 'proxies'>): Promise<{ ok: true; pid: number } | { ok: false; report: Extract<LaunchReport, { ok: false }> }> {
    const dir = this.dir(inst);
    await rm(this.qmpSocket(inst), { force: true });
    await rm(join(dir, STATUS_FILE), { force: true });
    // bound to its supervisor (it dies with it), where the host can make PID namespaces; where it
    // cannot, binding would cost the drop to an unprivileged user, so the VM is not bound, and a
    // QEMU whose supervisor was killed is ended by the daemon instead (killStray)
    const confinement = await this.confine(qemuArgv[0]!);
    const cmd = confinement.parentBound ? qemuArgv : boundToParent(confinement, qemuArgv);
    await writeFile(join(dir, 'qemu.argv'), JSON.stringify(qemuArgv) + '\n');
    writeLaunch(dir, {
      id: inst.name,
      argv: cmd,
      ...extra,
      qmpSocket: this.qmpSocket(inst),
      controlSocket: this.socket(inst),
      // a profiling boot's console is its record of opened files: never rotated away below 256 MiB
      console: { file: this.logFile(inst), maxBytes: inst.spec.profile ? Math.max(CONSOLE_MAX_BYTES, 256 << 20) : CONSOLE_MAX_BYTES },
      commandSocket: this.commandSocket(inst),
      parentPid: process.pid,
    });
    let started;
    try {
      const spare = this.takeSpare();
      started = await startSupervisor(dir, { deadlineMs: LAUNCH_DEADLINE_MS, ...spare }).catch((e: Error) => {
        // a spare that was gone before it read the folder did nothing: a supervisor of its own then
        if (spare.spare && !existsSync(join(dir, STATUS_FILE))) return startSupervisor(dir, { deadlineMs: LAUNCH_DEADLINE_MS });
        throw e;
      });
    } catch (e) {
      throw internal('VM_START_FAILED', `the VM's supervisor failed: ${(e as Error).message}`, `its log is ${join(dir, 'supervisor.log')}`);
    }
    void started.exited.then(onExit);
    if (started.report.ok) return { ok: true, pid: started.pid };
    await started.exited;
    return { ok: false, report: started.report };
  }

  /** A failed launch, said in the user's terms. */
  private launchError(inst: InstanceRecord, r: Extract<LaunchReport, { ok: false }>): UnikError {
    const why = r.stderr ?? '';
    const argvFile = join(this.dir(inst), 'qemu.argv');
    if (/lock/i.test(why)) return conflict('VOLUME_LOCKED', `a volume's disk is in use by another VM: ${why}`, 'stop the VM that uses it');
    if (/cannot listen on .*EADDRINUSE/.test(r.message)) return conflict('PORT_IN_USE', r.message, 'pick another host port with -p');
    if (/host forwarding|Could not set up/i.test(why)) return conflict('PORT_IN_USE', `QEMU could not forward a host port: ${why}`, 'pick another host port with -p');
    if (r.code === 0) {
      // QEMU ran, and the guest reset at once: it died while booting (too little memory, say)
      const consoleTail = readTail(this.logFile(inst), 6);
      return failedPrecondition('GUEST_DIED_AT_BOOT', `the guest stopped while booting${consoleTail ? `:\n${consoleTail}` : ''}`, `too little memory (${inst.spec.memoryMb} MB)? try a larger --memory`);
    }
    return internal('VM_START_FAILED', r.message, `full command in ${argvFile}`);
  }

  private supervisor(inst: InstanceRecord): SupervisorStatus | undefined {
    return readStatus(this.dir(inst));
  }

  async inspect(inst: InstanceRecord): Promise<Observed> {
    const s = this.supervisor(inst);
    if (this.legacyVm(inst)) return { alive: true, ready: true, exitCode: null };
    const alive = supervisorAlive(s) && s!.state !== 'exited';
    return { alive, ready: !!s?.ready, exitCode: s?.appExitCode ?? null, ...(s?.readyAt ? { readyAt: s.readyAt } : {}) };
  }

  /** QEMU's pid, under the very process the supervisor started (not one that took its pid since). */
  vmPid(inst: InstanceRecord): number | undefined {
    const s = this.supervisor(inst);
    if (s?.qemuPid && s.qemuStart && s.state !== 'exited' && procStart(s.qemuPid) === s.qemuStart) return qemuUnder(s.qemuPid);
    return this.legacyVm(inst);
  }

  /** Stops the VM through its supervisor; if that cannot be reached, kills the supervisor (QEMU dies with it). */
  async stop(inst: InstanceRecord, graceMs: number): Promise<void> {
    const s = this.supervisor(inst);
    const legacy = this.legacyVm(inst);
    if (legacy) {
      process.kill(legacy, 'SIGKILL');
      return;
    }
    if (!supervisorAlive(s)) return this.killStray(s);
    const answer = await command(this.commandSocket(inst), graceMs > 0 ? `stop ${graceMs}` : 'kill', graceMs + 10_000);
    if (answer === 'ok' && (await waitDead(s!, 5000))) return;
    try {
      process.kill(s!.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitDead(s!, 5000);
    this.killStray(s);
  }

  /**
   * QEMU is bound to its supervisor; this makes sure of it when the supervisor is gone. The
   * process must be the very one the supervisor started (its pid and start time), never a
   * process that took its pid since.
   */
  private killStray(s: SupervisorStatus | undefined): void {
    if (s?.qemuPid && s.qemuStart && procStart(s.qemuPid) === s.qemuStart) {
      try {
        process.kill(s.qemuPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** A VM started by a unik from before supervisors: a detached QEMU whose command line names the instance folder. */
  private legacyVm(inst: InstanceRecord): number | undefined {
    const pid = inst.status.pid;
    return pid && !existsSync(join(this.dir(inst), STATUS_FILE)) && isOurVm(pid, this.dir(inst)) ? pid : undefined;
  }

  async adopt(inst: InstanceRecord): Promise<{ pid: number; accel: string } | undefined> {
    const s = this.supervisor(inst);
    if (!supervisorAlive(s) || s!.state !== 'running') return undefined;
    let argv: string[] = [];
    try {
      argv = readLaunch(this.dir(inst)).argv;
    } catch {
      /* no launch: the accelerator is unknown */
    }
    const at = argv.indexOf('-accel');
    return { pid: s!.pid, accel: at >= 0 ? argv[at + 1]!.split(',')[0]! : inst.status.accel };
  }

  async abandon(dir: string): Promise<void> {
    const s = readStatus(dir);
    if (supervisorAlive(s)) {
      try {
        process.kill(s!.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await waitDead(s!, 5000);
    }
    this.killStray(s);
  }

  async signal(inst: InstanceRecord, signal: number): Promise<void> {
    if (signal === 9) return this.stop(inst, 0);
    const answer = await command(this.commandSocket(inst), `signal ${signal}`, 2000);
    if (answer !== 'ok') throw internal('NO_CONTROL_CHANNEL', `cannot reach the supervisor of ${inst.name} to pass it signal ${signal}`);
  }

  async remove(inst: InstanceRecord): Promise<void> {
    await rm(this.dir(inst), { recursive: true, force: true });
    for (const f of [this.socket(inst), this.qmpSocket(inst), this.commandSocket(inst)]) await rm(f, { force: true });
  }
}

async function waitDead(s: SupervisorStatus, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!supervisorAlive(s)) return true;
    await sleep(10);
  }
  return !supervisorAlive(s);
}

function readTail(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}
