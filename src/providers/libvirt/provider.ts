// Instances as libvirt domains, on this machine (qemu:///system) or another (qemu+ssh://…).
// Images for libvirt carry a PC kernel (PCI, ACPI, virtio-pci); a domain boots it directly with
// the per-start initrd (the image root plus the boot config), both uploaded through a storage
// pool. The guest speaks on two serial lines, as under the QEMU provider: the console, and the
// control line, whose output virtlogd logs (ready, exit N) and whose pty takes stop and signals.
// Domains are persistent, named after the home and the instance, so a daemon that died finds
// its own again; published ports are relayed by the daemon to the instance's bridged address.

import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { kernelCmdline, type Accel } from '../../base/linux/cmdline.js';
import { writeStartInitrd } from '../../base/linux/contract.js';
import { conflict, failedPrecondition, invalid, unavailable, internal } from '../../model/errors.js';
import type { UnikPaths } from '../../model/paths.js';
import type { ImageRecord, InstanceRecord, InstanceSpec } from '../../model/types.js';
import { GuestLines } from '../../supervisor/guest-lines.js';
import { startProxies, type Proxies } from '../../supervisor/port-proxy.js';
import { hostTscKhz } from '../qemu/accel.js';
import { diskSerial } from '../qemu/args.js';
import { instanceBootConfig } from '../boot-config.js';
import { onPath } from '../../util/exec.js';
import { archOf, type Arch } from '../../model/arch.js';
import { checkPortsFree } from '../qemu/ports.js';
import type { Attachments, Observed, Provider, ProviderInfo } from '../types.js';
import { domainXml } from './domain.js';
import { DEFAULT_POOL_PATH, deleteVolumes, ensurePool, uploadVolume } from './pool.js';
import { sendLine } from './pty.js';
import { Virsh, VirshError, isRemoteUri } from './virsh.js';

/** in an instance's folder: the name of its domain, written before the domain is defined */
const DOMAIN_FILE = 'libvirt.domain';
/** how long a list of running domains is trusted (the watcher asks several times a second) */
const RUNNING_TTL_MS = 1000;
const PROBE_DEADLINE_MS = 8000;
const INFO_TTL_MS = 3000;

export class LibvirtProvider implements Provider {
  readonly name = 'libvirt';
  readonly infrastructure = 'libvirt';
  /** libvirt domains here are PCs (x86_64): arm64 images run under the qemu provider */
  readonly arches: readonly Arch[] = ['amd64'];
  /** a PC's devices: PCI, ACPI power-off, virtio-pci; block and filesystems for volumes */
  readonly kernelFragments = ['block', 'ext4', 'fat', 'pc'];
  private readonly virsh: Virsh;
  private readonly remote: boolean;
  /** this home's domains are named unik-TAG-…: two homes on one libvirt host never meet */
  private readonly tag: string;
  private pool?: Promise<string>;
  private poolPath = DEFAULT_POOL_PATH;
  private accel?: Promise<{ accel: Accel; reason: string }>;
  private running?: { at: number; names: Set<string> } | { at: number; error: Error };
  /** bumped by every start and stop: a list asked for before one must not overwrite what it did */
  private generation = 0;
  private readonly proxies = new Map<string, Proxies>();
  /** each instance's control-line reader, from the offset it has read up to */
  private readonly events = new Map<string, { offset: number; lines: GuestLines }>();

  constructor(
    private readonly paths: UnikPaths,
    private readonly log: (msg: string) => void = () => {},
    readonly uri = process.env.LIBVIRT_DEFAULT_URI || 'qemu:///system',
  ) {
    this.virsh = new Virsh(uri);
    this.remote = isRemoteUri(uri);
    // the home's real path: /srv/unik and /srv/unik/ are one home, with one set of domains
    this.tag = createHash('sha256').update(realpathOr(paths.home)).digest('hex').slice(0, 8);
  }

  /** asked on every /available_providers call (clients poll it): a fresh answer every few seconds is enough */
  private lastInfo?: { at: number; info: Promise<ProviderInfo> };

  info(): Promise<ProviderInfo> {
    if (!this.lastInfo || Date.now() - this.lastInfo.at > INFO_TTL_MS) this.lastInfo = { at: Date.now(), info: this.probeInfo() };
    return this.lastInfo.info;
  }

  private async probeInfo(): Promise<ProviderInfo> {
    const base = { name: this.name, infrastructure: this.infrastructure };
    if (!onPath('virsh')) return { ...base, available: false, reason: 'virsh is not installed (apt-get install libvirt-clients libvirt-daemon-system)', fix: 'apt-get install libvirt-clients libvirt-daemon-system' };
    if (this.needsRoot()) return { ...base, available: false, reason: this.needsRoot()!, fix: 'run the daemon as root' };
    try {
      const v = await this.virsh.run(['version'], { deadlineMs: 5000 });
      const hv = /Running hypervisor:\s*(.+)/.exec(v)?.[1]?.trim() ?? 'unknown hypervisor';
      const accel = this.accel ? (await this.accel).reason : 'acceleration is chosen at the first run (KVM if a probe domain boots, else TCG)';
      return { ...base, available: true, reason: `${this.uri} (${hv}); ${accel}` };
    } catch (e) {
      return {
        ...base,
        available: false,
        reason: `cannot reach libvirt at ${this.uri}: ${(e as Error).message} (start libvirtd, or point the daemon elsewhere with --libvirt-uri)`,
        fix: this.remote ? `check that ${this.uri} is reachable, or start the daemon with another --libvirt-uri` : 'virtlogd -d && libvirtd -d (or systemctl start libvirtd)',
      };
    }
  }

  /** Why this daemon cannot drive a local libvirt: it reads the logs virtlogd writes as root. */
  private needsRoot(): string | undefined {
    if (this.remote || process.getuid?.() === 0) return undefined;
    return `the libvirt provider on ${this.uri} needs a daemon running as root (it reads the console logs libvirt writes as root)`;
  }

  async preflight(spec: InstanceSpec): Promise<void> {
    const why = this.needsRoot();
    if (why) throw unavailable('LIBVIRT_NEEDS_ROOT', why, 'run the daemon as root, or use --provider qemu');
    if (spec.memoryMb < 16 || spec.memoryMb > 65536) throw invalid('BAD_MEMORY', `memory ${spec.memoryMb} MB is out of range (16-65536)`);
    await checkPortsFree(spec.ports);
  }

  domainName(inst: { id: string }): string {
    return `unik-${this.tag}-${inst.id.slice(0, 12)}`;
  }

  private dir(inst: InstanceRecord): string {
    return join(this.paths.instances, inst.id);
  }

  logFile(inst: InstanceRecord): string {
    return join(this.poolPath, `${this.domainName(inst)}.console.log`);
  }

  private eventsFile(inst: { id: string }): string {
    return join(this.poolPath, `${this.domainName(inst)}.events.log`);
  }

  private ensurePool(): Promise<string> {
    this.pool ??= ensurePool(this.virsh).then(
      (p) => (this.poolPath = p),
      (e: Error) => {
        this.pool = undefined;
        throw unavailable('LIBVIRT_UNAVAILABLE', `libvirt at ${this.uri}: ${e.message}`, 'start libvirtd (e.g. `virtlogd -d && libvirtd -d`), or check `unik providers`');
      },
    );
    return this.pool;
  }

  async start(inst: InstanceRecord, image: ImageRecord, { volumes, nic }: Attachments): Promise<{ pid: number; accel: string }> {
    const m = image.manifest;
    // a pulled manifest names its provider freely: the architecture is checked here, not trusted
    if (archOf(m.arch) !== 'amd64')
      throw failedPrecondition('UNSUPPORTED_ARCH', `image ${image.name} is for ${String(m.arch).slice(0, 32)}; libvirt domains here are x86_64 PCs`, 'run arm64 images with the qemu provider');
    if (m.rootDisk)
      throw failedPrecondition('ROOT_DISK_NOT_SUPPORTED', `image ${image.name} keeps its files on a read-only root disk, which the libvirt provider does not attach yet`, 'run it with the qemu provider, or rebuild it with its root in the initramfs (unik.yaml rootDisk: false)');
    if (!m.kernel.fragments.includes('pc'))
      throw failedPrecondition('NOT_A_LIBVIRT_IMAGE', `image ${image.name} has a microvm kernel, which a libvirt domain cannot boot`, `build it for libvirt: unik push ${image.name} PATH --provider libvirt --force`);
    const imageDir = join(this.paths.images, image.id);
    const kernelFile = join(imageDir, m.kernel.file);
    const rootFile = join(imageDir, m.root.file);
    for (const f of [kernelFile, rootFile])
      if (!existsSync(f)) throw unavailable('IMAGE_FILES_MISSING', `image ${image.name} is damaged: ${f} is missing`, `rebuild it: unik push ${image.name} PATH --provider libvirt --force`);
    if (this.remote && volumes.length) throw failedPrecondition('REMOTE_VOLUMES', `volumes are disk files on this machine; the libvirt host ${this.uri} cannot open them`, 'run without volumes, or run the daemon on that host');
    if (this.remote && nic) throw failedPrecondition('REMOTE_BRIDGE', `bridged networks are made on this machine; a domain on ${this.uri} cannot join one`, 'run it with --network user');
    if (!nic && inst.spec.ports.length)
      throw failedPrecondition('PORTS_NEED_BRIDGED_NETWORK', 'published ports of libvirt instances are relayed to their bridged address, and this instance is on user-mode networking', 'run it on a bridged network (the default when the daemon runs as root)');

    const dom = this.domainName(inst);
    const dir = this.dir(inst);
    // the record before the effect: a daemon that dies from here on finds the domain by this file
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, DOMAIN_FILE), dom + '\n');
    const pool = await this.ensurePool();
    const kernel = await uploadVolume(this.virsh, `${dom}.kernel`, kernelFile);
    const { accel } = await this.chooseAccel(kernel, pool);

    const config = instanceBootConfig(inst, image, { volumes, ...(nic ? { nic } : {}) });
    const localInitrd = join(dir, 'initrd');
    let initrd: string;
    try {
      await writeStartInitrd(localInitrd, rootFile, config);
      initrd = await uploadVolume(this.virsh, `${dom}.initrd`, localInitrd);
    } finally {
      // it holds the app's env and seed: it lives only in the pool, readable by root there
      await rm(localInitrd, { force: true });
    }

    const xmlFile = join(dir, 'domain.xml');
    await writeFile(
      xmlFile,
      domainXml({
        name: dom,
        uuid: uuidOf(inst.id),
        title: inst.name,
        description: `unik instance ${inst.name} (${inst.id}) of image ${image.name}, home ${this.paths.home}`,
        accel,
        memoryMb: inst.spec.memoryMb,
        kernel,
        initrd,
        // the host's TSC frequency means nothing to a guest on another machine
        cmdline: kernelCmdline({ accel, ...(this.remote ? {} : { tscKhz: hostTscKhz() }) }),
        consoleLog: join(pool, `${dom}.console.log`),
        eventsLog: join(pool, `${dom}.events.log`),
        ...(nic ? { bridge: { bridge: nic.bridge, tap: nic.tap, mac: nic.mac } } : {}),
        disks: volumes.map((v) => ({ file: v.file, serial: diskSerial(v.id) })),
      }),
      { mode: 0o600 },
    );
    // a domain of this instance still active (a start that timed out and finished later) goes first
    await this.virsh.maybe(['destroy', dom]);
    await this.virsh.run(['define', xmlFile]);

    // published ports are held before the domain starts: a taken one fails the run at once
    if (nic && inst.spec.ports.length) await this.relayPorts(inst, nic.ip.split('/')[0]!);
    this.events.delete(inst.id);
    try {
      await this.virsh.run(['start', dom], { deadlineMs: 60_000 });
    } catch (e) {
      this.closeProxies(inst);
      // virsh may have given up while libvirtd still starts it: it must not run on unwatched
      await this.virsh.maybe(['destroy', dom]).catch(() => undefined);
      this.saw(dom, false);
      throw internal('VM_START_FAILED', `libvirt could not start the domain of ${inst.name}: ${(e as Error).message}`, `its definition is ${xmlFile}`);
    }
    this.saw(dom, true);
    return { pid: this.qemuPid(dom), accel };
  }

  private async relayPorts(inst: InstanceRecord, guestIp: string): Promise<void> {
    try {
      this.proxies.set(inst.id, await startProxies(inst.spec.ports.map((p) => ({ ...p, guestIp }))));
    } catch (e) {
      throw conflict('PORT_IN_USE', (e as Error).message, 'pick another host port with -p');
    }
  }

  private closeProxies(inst: { id: string }): void {
    this.proxies.get(inst.id)?.close();
    this.proxies.delete(inst.id);
  }

  /** QEMU's pid, where libvirt runs on this machine (0 elsewhere: there is no local process). */
  private qemuPid(dom: string): number {
    if (this.remote) return 0;
    try {
      return Number(readFileSync(`/run/libvirt/qemu/${dom}.pid`, 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  }

  /**
   * Is the domain running? From one `virsh list` for all domains, at most RUNNING_TTL_MS old. A
   * list that was asked for before a start or stop is used by its caller (whose instance it is
   * about, under that instance's lock) but not kept; a libvirt that does not answer is
   * remembered as such for the same time, so the watcher does not wait on it at every turn.
   */
  private async isRunning(dom: string, fresh = false): Promise<boolean> {
    let r = this.running;
    if (fresh || !r || Date.now() - r.at > RUNNING_TTL_MS) {
      const asked = this.generation;
      try {
        // active domains: running, paused or shutting down
        const out = await this.virsh.run(['list', '--name'], { deadlineMs: 10_000 });
        r = { at: Date.now(), names: new Set(out.split('\n').map((l) => l.trim()).filter(Boolean)) };
      } catch (e) {
        r = { at: Date.now(), error: e as Error };
      }
      if (asked === this.generation) this.running = r;
    }
    if ('error' in r) throw unavailable('LIBVIRT_UNAVAILABLE', `libvirt at ${this.uri} does not answer: ${r.error.message}`, 'start libvirtd; the daemon looks again on its own');
    return r.names.has(dom);
  }

  /** Says what a start or stop just did, and voids the lists asked for before it. */
  private saw(dom: string, running: boolean): void {
    this.generation++;
    if (this.running && 'names' in this.running) {
      if (running) this.running.names.add(dom);
      else this.running.names.delete(dom);
    }
  }

  /** The guest's events so far (ready, exit N), read from the control line's log as it grows. */
  private guest(inst: { id: string }): GuestLines {
    let ev = this.events.get(inst.id);
    if (!ev) this.events.set(inst.id, (ev = { offset: 0, lines: new GuestLines() }));
    if (this.remote) return ev.lines;
    const file = this.eventsFile(inst);
    try {
      const size = statSync(file).size;
      // rotated or rewritten by a new start: read it again from its start
      if (size < ev.offset) ev.offset = 0;
      if (size === ev.offset) return ev.lines;
      const fd = openSync(file, 'r');
      try {
        // to its end (virtlogd keeps it under its max_size), in bounded pieces
        const buf = Buffer.alloc(64 * 1024);
        for (let n = 1; n > 0 && ev.offset < size; ) {
          n = readSync(fd, buf, 0, Math.min(buf.length, size - ev.offset), ev.offset);
          ev.offset += n;
          ev.lines.feed(buf.subarray(0, n).toString('utf8'));
        }
      } finally {
        closeSync(fd);
      }
    } catch {
      /* not written yet, or unreadable: what was read so far stands */
    }
    return ev.lines;
  }

  async inspect(inst: InstanceRecord): Promise<Observed> {
    const dom = this.domainName(inst);
    // after a daemon restart, the logs are where the pool is
    await this.ensurePool().catch(() => undefined);
    const alive = await this.isRunning(dom);
    // a remote host's control log cannot be read from here: a running domain is taken as started
    if (this.remote) return { alive, ready: alive, exitCode: null };
    const g = this.guest(inst);
    if (!alive) this.closeProxies(inst);
    else if (inst.status.state === 'running' && inst.spec.ports.length && inst.spec.network && !this.proxies.has(inst.id)) {
      // a daemon restarted: the domain ran on, its published ports are relayed again
      const ip = inst.spec.network.ip.split('/')[0]!;
      await this.relayPorts(inst, ip).catch((e: Error) => this.log(`cannot relay the ports of ${inst.name} again: ${e.message}`));
    }
    return { alive, ready: g.ready, exitCode: g.exitCode };
  }

  /** The pty of the domain's control line (its second serial port), as libvirt reports it. */
  private async controlPty(dom: string): Promise<string | undefined> {
    if (this.remote) return undefined;
    const x = await this.virsh.maybe(['dumpxml', dom]);
    const serials = [...(x ?? '').matchAll(/<serial type='pty'>\s*<source path='([^']+)'/g)].map((s) => s[1]!);
    return serials[1];
  }

  async stop(inst: InstanceRecord, graceMs: number): Promise<void> {
    const dom = this.domainName(inst);
    if (await this.isRunning(dom, true)) {
      const g = this.guest(inst);
      const pty = graceMs > 0 && g.ready && g.exitCode === null ? await this.controlPty(dom) : undefined;
      if (pty) {
        const until = Date.now() + graceMs;
        // the init stops the app (SIGTERM), reports its exit and powers the machine off
        await sendLine(pty, 'stop\n', () => this.guest(inst).exitCode !== null, graceMs).catch((e: Error) => this.log(`cannot ask ${inst.name} to stop: ${e.message}`));
        while (Date.now() < until + 5000 && (await this.isRunning(dom, true))) await sleep(100);
      }
      // (a remote domain has no control line from here, and the guest has no ACPI button driver)
      await this.virsh.maybe(['destroy', dom]);
      this.saw(dom, false);
    }
    this.closeProxies(inst);
  }

  async signal(inst: InstanceRecord, signal: number): Promise<void> {
    if (signal === 9) return this.stop(inst, 0);
    const dom = this.domainName(inst);
    const g = this.guest(inst);
    const pty = g.ready ? await this.controlPty(dom) : undefined;
    if (!pty) {
      // nothing runs yet that could stop in order: an ending signal ends the VM
      if (signal === 15 || signal === 2) return this.stop(inst, 0);
      throw failedPrecondition('NO_CONTROL_CHANNEL', `cannot pass signal ${signal} to ${inst.name}: its app is not running${this.remote ? ', or the libvirt host is remote' : ''}`);
    }
    await sendLine(pty, signal === 15 || signal === 2 ? 'stop\n' : `signal ${signal}\n`);
  }

  async adopt(inst: InstanceRecord): Promise<{ pid: number; accel: string } | undefined> {
    const dom = this.domainName(inst);
    if (!(await this.isRunning(dom, true))) return undefined;
    const x = (await this.virsh.maybe(['dumpxml', dom])) ?? '';
    return { pid: this.qemuPid(dom), accel: /<domain type='kvm'/.test(x) ? 'kvm' : 'tcg' };
  }

  /** A folder with no record: its domain, if it made one, goes with its files. */
  async abandon(dir: string): Promise<void> {
    const file = join(dir, DOMAIN_FILE);
    if (!existsSync(file)) return;
    const dom = readFileSync(file, 'utf8').trim();
    // only a name this home would have made, for the folder's own instance
    if (dom !== this.domainName({ id: basename(dir) })) return;
    await this.undefine(dom);
  }

  async remove(inst: InstanceRecord): Promise<void> {
    this.closeProxies(inst);
    this.events.delete(inst.id);
    if (existsSync(join(this.dir(inst), DOMAIN_FILE))) await this.undefine(this.domainName(inst));
    await rm(this.dir(inst), { recursive: true, force: true });
  }

  private async undefine(dom: string): Promise<void> {
    await this.virsh.maybe(['destroy', dom]);
    await this.virsh.maybe(['undefine', dom]);
    this.saw(dom, false);
    await deleteVolumes(this.virsh, `${dom}.`);
  }

  /**
   * KVM only if a probe domain really boots under it within a deadline (a /dev/kvm that libvirt
   * offers is not proof: a nested host may hang every guest). UNIK_ACCEL=kvm|tcg skips it.
   */
  private chooseAccel(kernel: string, pool: string): Promise<{ accel: Accel; reason: string }> {
    this.accel ??= this.probe(kernel, pool).then((c) => {
      if (c.accel === 'tcg') this.log(`libvirt: ${c.reason}`);
      return c;
    });
    return this.accel;
  }

  private async probe(kernel: string, pool: string): Promise<{ accel: Accel; reason: string }> {
    const forced = process.env.UNIK_ACCEL;
    if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `UNIK_ACCEL=${forced}` };
    try {
      await this.virsh.run(['domcapabilities', '--virttype', 'kvm'], { deadlineMs: 10_000 });
    } catch {
      return { accel: 'tcg', reason: `libvirt at ${this.uri} offers no KVM: using TCG software emulation (much slower)` };
    }
    const dom = `unik-${this.tag}-probe`;
    const log = join(pool, `${dom}.console.log`);
    const xml = domainXml({ name: dom, title: 'unik acceleration probe', description: 'boots, panics and is gone', accel: 'kvm', memoryMb: 64, kernel, cmdline: 'console=ttyS0 panic=-1 reboot=t', consoleLog: log, eventsLog: join(pool, `${dom}.events.log`), disks: [] });
    const xmlFile = join(this.paths.tmp, `${dom}.xml`);
    await writeFile(xmlFile, xml);
    let booted = false;
    try {
      await this.virsh.maybe(['destroy', dom]);
      // transient: it is gone once it stops (it panics without a root and resets)
      await this.virsh.run(['create', xmlFile]);
      const until = Date.now() + PROBE_DEADLINE_MS;
      while (Date.now() < until && (await this.isRunning(dom, true))) await sleep(200);
      // gone within the deadline: it panicked and reset (its console says so where it can be read)
      booted = !(await this.isRunning(dom, true)) && (this.remote || /Linux version|Kernel panic/.test(readTail(log)));
    } catch (e) {
      this.log(`libvirt: the KVM probe failed: ${e instanceof VirshError ? e.message : String(e)}`);
    } finally {
      await this.virsh.maybe(['destroy', dom]).catch(() => undefined);
      await deleteVolumes(this.virsh, `${dom}.`).catch(() => undefined);
      await rm(xmlFile, { force: true });
    }
    if (booted) return { accel: 'kvm', reason: 'KVM (a probe domain booted)' };
    return { accel: 'tcg', reason: `libvirt offers KVM at ${this.uri} but a probe domain did not boot under it within ${PROBE_DEADLINE_MS / 1000} s: using TCG software emulation (much slower)` };
  }
}

/** A domain's UUID, from its instance id: a new definition of the same instance replaces the old. */
function uuidOf(id: string): string {
  const h = id.slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-64 * 1024);
  } catch {
    return '';
  }
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
