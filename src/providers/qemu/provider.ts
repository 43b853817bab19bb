import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnikError, conflict, failedPrecondition, internal, invalid, unavailable } from '../../model/errors.js';
import type { UnikPaths } from '../../model/paths.js';
import type { ImageRecord, InstanceRecord, InstanceSpec, VolumeMount } from '../../model/types.js';
import { USER_NET, bootConfigFrame, parseGuestEvents, writeStartInitrd, type BootConfig } from '../../base/linux/contract.js';
import type { Observed, Provider, ProviderInfo } from '../types.js';
import { chooseAccel, hostTscKhz, type AccelChoice } from './accel.js';
import { diskSerial, qemuArgs } from './args.js';
import { Qmp } from './qmp.js';
import { SNAPSHOTS_ON, STATE_FD, SnapshotTemplates, fitsSnapshot, loadSnapshot, openSnapshotState, type TemplateSource } from './snapshot.js';
import { privateDir, qemuConfinement, type Confinement } from './confine.js';
import { checkPortsFree } from './ports.js';
import { isOurVm, waitGone } from './process.js';

const QEMU = process.env.UNIK_QEMU || 'qemu-system-x86_64';
/** QEMU's monitor answers within this long of starting, or the launch failed */
const LAUNCH_DEADLINE_MS = 15_000;

/** Local VMs under QEMU (microvm), one detached QEMU process per instance. */
export class QemuProvider implements Provider {
  readonly name = 'qemu';
  readonly infrastructure = 'QEMU';
  private accel?: Promise<AccelChoice>;
  private confinement?: Promise<Confinement>;
  private readonly templates: SnapshotTemplates;

  constructor(
    private readonly paths: UnikPaths,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.templates = new SnapshotTemplates(QEMU, paths.sockets, log);
  }

  async info(): Promise<ProviderInfo> {
    const base = { name: this.name, infrastructure: this.infrastructure };
    if (!(await hasProgram(QEMU))) return { ...base, available: false, reason: `${QEMU} is not installed (apt-get install qemu-system-x86)` };
    const accel = this.accel ? (await this.accel).reason : 'acceleration is chosen at the first run (KVM if a probe guest boots, else TCG)';
    return { ...base, available: true, reason: accel };
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

  private controlLog(inst: InstanceRecord): string {
    return join(this.dir(inst), 'control.log');
  }

  /** Boots a new image's snapshot template at its default memory, so its first run is a restore too. */
  prepare(image: ImageRecord): void {
    if (!SNAPSHOTS_ON) return;
    const kernel = join(this.paths.images, image.id, image.manifest.kernel.file);
    void this.chooseAccel(kernel)
      .then(({ accel }) => this.templates.ensure(this.templateSource(image), image.manifest.defaultMemoryMb, accel, hostTscKhz()))
      .catch(() => {});
  }

  private templateSource(image: ImageRecord): TemplateSource {
    const dir = join(this.paths.images, image.id);
    return { dir: join(dir, 'snapshots'), kernel: join(dir, image.manifest.kernel.file), root: join(dir, image.manifest.root.file), name: image.name };
  }

  /** How QEMU is confined here, probed and logged once. */
  private confine(): Promise<Confinement> {
    this.confinement ??= qemuConfinement(QEMU).then((c) => {
      this.log(c.summary);
      return c;
    });
    return this.confinement;
  }

  private chooseAccel(kernel: string): Promise<AccelChoice> {
    this.accel ??= this.confine().then((confinement) => chooseAccel(QEMU, kernel, confinement)).then((c) => {
      if (c.accel === 'tcg') this.log(`warning: ${c.reason}`);
      return c;
    });
    return this.accel;
  }

  async start(inst: InstanceRecord, image: ImageRecord, volumes: VolumeMount[], onExit: () => void): Promise<{ pid: number; accel: string }> {
    const dir = this.dir(inst);
    const imageDir = join(this.paths.images, image.id);
    const kernel = join(imageDir, image.manifest.kernel.file);
    const root = join(imageDir, image.manifest.root.file);
    for (const f of [kernel, root])
      if (!existsSync(f)) throw unavailable('IMAGE_FILES_MISSING', `image ${image.name} is damaged: ${f} is missing`, `rebuild it: unik push ${image.name} PATH --force`);
    if (!(await hasProgram(QEMU))) throw unavailable('NO_QEMU', `${QEMU} is not installed`, 'apt-get install qemu-system-x86 (or run `npm run setup`)');
    const { accel } = await this.chooseAccel(kernel);
    const confinement = await this.confine();

    await mkdir(dir, { recursive: true });
    // QEMU binds its monitor and control sockets here as root: only root may reach them
    await privateDir(this.paths.sockets);
    const socket = this.socket(inst);
    if (socket.length > 100) throw invalid('HOME_TOO_LONG', `UNIK_HOME is too long for a control socket path (${socket})`, 'use a shorter UNIK_HOME');
    await rm(socket, { force: true });

    const m = image.manifest;
    const config: BootConfig = {
      argv: [...m.argv, ...(inst.spec.args ?? [])],
      env: { ...m.env, ...inst.spec.env },
      cwd: m.cwd,
      hostname: inst.name,
      time: Date.now() / 1000,
      net: USER_NET,
      mounts: volumes.map((v) => ({ serial: diskSerial(v.id), fstype: v.type === 'fat' ? 'vfat' : v.type, mountPoint: v.mountPoint })),
      seed: randomBytes(32),
    };
    await writeFile(this.controlLog(inst), '');
    await rm(this.qmpSocket(inst), { force: true });
    const common = {
      accel,
      tscKhz: hostTscKhz(),
      memoryMb: inst.spec.memoryMb,
      kernel,
      name: `unik-${inst.name}`,
      ports: inst.spec.ports,
      consoleLog: this.logFile(inst),
      controlSocket: socket,
      controlLog: this.controlLog(inst),
      qmpSocket: this.qmpSocket(inst),
      disks: volumes.map((v) => ({ file: v.file, serial: diskSerial(v.id) })),
      confinement,
    };

    // A restore from the image's boot snapshot when the instance fits one: no volumes (the
    // template has no disks) and a config small enough for the serial control channel.
    if (volumes.length === 0 && fitsSnapshot(bootConfigFrame(config))) {
      const snap = await this.templates.ensure(this.templateSource(image), inst.spec.memoryMb, accel, common.tscKhz);
      if (snap) {
        try {
          const argv = qemuArgs({ ...common, initrd: root, memoryFile: { path: snap.ram, shared: false }, incoming: true, waitForConfig: true });
          const pid = await this.launch(inst, argv, onExit, openSnapshotState(snap), async (qmp) => {
            const status = await loadSnapshot(qmp);
            // the config goes in before the VM runs: the template's init is blocked reading it
            const fresh = bootConfigFrame({ ...config, now: Date.now() / 1000 });
            if (!(await sendControl(socket, fresh))) throw new Error('the control channel of the restored VM did not answer');
            if (status === 'paused') await qmp.execute('cont');
          });
          return { pid, accel };
        } catch (e) {
          if (e instanceof UnikError) throw e;
          this.log(`restoring ${image.name} from its boot snapshot failed, booting cold: ${(e as Error).message}`);
          await this.templates.invalidate(snap);
          await writeFile(this.controlLog(inst), '');
          await rm(this.qmpSocket(inst), { force: true });
        }
      }
    }

    // A cold boot. The per-start initrd: the image root, then the boot config (argv, env,
    // network) as a second cpio archive, which the kernel unpacks over the first.
    const initrd = join(dir, 'initrd');
    await writeStartInitrd(initrd, root, config);
    const pid = await this.launch(inst, qemuArgs({ ...common, initrd }), onExit, null);
    return { pid, accel };
  }

  /**
   * Starts QEMU detached (the VM outlives a daemon restart; the daemon adopts it again) and
   * resolves once QEMU's monitor answers, i.e. once every device and port forward is set up,
   * after `then` has run on the monitor. Early failures become clear errors. `stateFd`, a
   * snapshot's device state, is QEMU's fd STATE_FD (and closed here).
   */
  private async launch(inst: InstanceRecord, argv: string[], onExit: () => void, stateFd: number | null, then?: (qmp: Qmp) => Promise<void>): Promise<number> {
    const dir = this.dir(inst);
    const errFile = join(dir, 'qemu.err');
    let errFd: number | undefined;
    let child;
    try {
      await writeFile(join(dir, 'qemu.argv'), JSON.stringify([QEMU, ...argv]) + '\n');
      errFd = openSync(errFile, 'w');
      const stdio: ('ignore' | number)[] = ['ignore', 'ignore', errFd];
      if (stateFd !== null) stdio[STATE_FD] = stateFd;
      child = spawn(QEMU, argv, { cwd: dir, detached: true, stdio });
    } finally {
      if (errFd !== undefined) closeSync(errFd);
      if (stateFd !== null) closeSync(stateFd);
    }
    let code: number | null | undefined;
    child.once('exit', (c) => {
      code = c;
      onExit();
    });
    child.once('error', () => (code = -1));
    child.unref();
    try {
      const qmp = await Qmp.connect(this.qmpSocket(inst), LAUNCH_DEADLINE_MS, () => code === undefined);
      try {
        await then?.(qmp);
      } finally {
        qmp.close();
      }
      if (!child.pid) throw new Error('QEMU has no pid');
      return child.pid;
    } catch (e) {
      if (code === undefined) {
        if (!then) {
          // QEMU is up but its monitor misbehaves: do not leave a VM nobody tracks
          child.kill('SIGKILL');
          throw internal('VM_START_FAILED', `QEMU started but its monitor failed: ${(e as Error).message}`, `full command in ${join(dir, 'qemu.argv')}`);
        }
        child.kill('SIGKILL');
        throw e; // a failed restore: the caller boots cold
      }
      await sleep(20); // let QEMU's last words reach the file
      const why = (await readFile(errFile, 'utf8').catch(() => '')).trim();
      if (/lock/i.test(why)) throw conflict('VOLUME_LOCKED', `a volume's disk is in use by another VM: ${why}`, 'stop the VM that uses it');
      if (/host forwarding|Could not set up/i.test(why))
        throw conflict('PORT_IN_USE', `QEMU could not forward a host port: ${why}`, 'pick another host port with -p');
      if (then) throw new Error(`QEMU exited during the restore (status ${String(code)}): ${why || 'no message'}`);
      if (code === 0) {
        // QEMU ran, and the guest reset at once: it died while booting (too little memory, say)
        const consoleTail = (await readFile(this.logFile(inst), 'utf8').catch(() => '')).trim().split('\n').slice(-6).join('\n');
        throw failedPrecondition('GUEST_DIED_AT_BOOT', `the guest stopped while booting${consoleTail ? `:\n${consoleTail}` : ''}`, `too little memory (${inst.spec.memoryMb} MB)? try a larger --memory`);
      }
      throw internal('VM_START_FAILED', `QEMU exited at once (status ${String(code)}): ${why || 'no message'}`, `full command in ${join(dir, 'qemu.argv')}`);
    }
  }

  async inspect(inst: InstanceRecord): Promise<Observed> {
    const events = await this.events(inst);
    let alive = isOurVm(inst.status.pid, this.dir(inst));
    if (alive && events.exitCode !== null) {
      // The app is done and the guest synced before saying so; only the reset is left, which
      // takes the kernel over a second under TCG. End it now.
      this.killVm(inst.status.pid!);
      alive = !(await waitGone(inst.status.pid!, this.dir(inst), 2000));
    }
    return { alive, ...events };
  }

  private async events(inst: InstanceRecord) {
    return parseGuestEvents(await readFile(this.controlLog(inst), 'utf8').catch(() => ''));
  }

  private killVm(pid: number): void {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  async stop(inst: InstanceRecord, graceMs: number): Promise<void> {
    const pid = inst.status.pid;
    const marker = this.dir(inst);
    if (!pid || !isOurVm(pid, marker)) return;
    // Orderly: the guest init sends SIGTERM to the app and reports its exit once synced.
    const asked = await sendControl(this.socket(inst), 'stop\n');
    if (asked) {
      const until = Date.now() + graceMs;
      while (Date.now() < until && isOurVm(pid, marker) && (await this.events(inst)).exitCode === null) await sleep(25);
    }
    if (!asked) {
      // no control channel (an old or broken guest): let QEMU shut down on SIGTERM
      process.kill(pid, 'SIGTERM');
      if (await waitGone(pid, marker, Math.min(graceMs, 2000))) return;
    }
    this.killVm(pid);
    await waitGone(pid, marker, 5000);
  }

  async signal(inst: InstanceRecord, signal: number): Promise<void> {
    if (signal === 9) return this.stop(inst, 0);
    if (!(await sendControl(this.socket(inst), `signal ${signal}\n`)))
      throw internal('NO_CONTROL_CHANNEL', `cannot reach the guest init of ${inst.name} to pass it signal ${signal}`);
  }

  async remove(inst: InstanceRecord): Promise<void> {
    await rm(this.dir(inst), { recursive: true, force: true });
    await rm(this.socket(inst), { force: true });
    await rm(this.qmpSocket(inst), { force: true });
  }
}

function sendControl(path: string, line: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
    s.once('connect', () => s.end(line, () => { clearTimeout(timer); resolve(true); }));
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

async function hasProgram(name: string): Promise<boolean> {
  if (name.includes('/')) return existsSync(name);
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, name))) return true;
  return false;
}
