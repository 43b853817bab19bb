import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Provider } from '../providers/types.js';
import type { Store } from '../store/db.js';
import { alreadyExists, failedPrecondition, invalid, notFound, unavailable } from '../model/errors.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { checkName, newId, resolveRef } from './ids.js';
import { parsePort } from './ports.js';
import { forgetLog, stampLog } from './logs.js';
import type { ImageService } from './images.js';
import type { VolumeService } from './volumes.js';
import { USER_MODE, type NetworkService } from './networks.js';
import { seconds, type EventAction, type EventBus } from './events.js';
import type { UnikPaths } from '../model/paths.js';
import type { InstanceRecord, InstanceSpec, InstanceStatus, PortForward } from '../model/types.js';

export interface RunRequest {
  image: string;
  name?: string;
  env?: Record<string, string>;
  memoryMb?: number;
  ports?: (string | Partial<PortForward>)[];
  mounts?: Record<string, string>;
  /** appended to the image's baked args (Docker's Cmd) */
  args?: string[];
  /** delete the instance once its app exits (Docker's --rm) */
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** a network's name or id, or `user` (QEMU user-mode); absent: the default (see NetworkService.forRun) */
  network?: string;
}

/** How long a guest may take from QEMU start to starting the app before it counts as hung. */
const BOOT_DEADLINE_MS = Number(process.env.UNIK_BOOT_DEADLINE_MS) || 60_000;
const WATCH_INTERVAL_MS = 250;

/**
 * Instances: the state machine lives here (pending → running → stopped, or error), not in
 * the routes. The recorded state is checked against the live VM on start-up and while the
 * daemon runs; an instance whose VM died is never shown as running.
 */
export class InstanceService {
  private timer?: NodeJS.Timeout;
  /** one operation at a time per instance (start, stop, rm, signal, attach); the watcher leaves held ones alone */
  private readonly ops = new KeyedLock();
  /** names of instances being created right now: a second run with the same name is refused */
  private readonly naming = new Set<string>();
  /** 'change' (record) on every state change, 'removed' (id) when one is deleted */
  readonly events = new EventEmitter().setMaxListeners(0); // one per waiting client, by design
  /** boots under way: when the start was asked for and how the provider boots it, until the app is up */
  private readonly boots = new Map<string, { at: number; kind: string }>();

  constructor(
    private readonly store: Store,
    private readonly paths: UnikPaths,
    private readonly providers: Map<string, Provider>,
    private readonly images: ImageService,
    private readonly volumes: VolumeService,
    private readonly networks: NetworkService,
    private readonly bus: EventBus,
  ) {}

  list(): InstanceRecord[] {
    return this.store.listInstances();
  }

  /**
   * Every record, the live ones first brought in line with their VMs (as refresh()). Only a
   * pending or running record can be behind its VM (observe leaves the others be): the rest are
   * as fresh as the list, and refreshing each of them cost a lock and a query per record.
   */
  async listObserved(): Promise<InstanceRecord[]> {
    return Promise.all(this.store.listInstances().map(async (i) => (isLive(i.status.state) ? ((await this.refresh(i.id)) ?? i) : i)));
  }

  /** How many instances each image has (Docker's image Containers). */
  countsByImage(): Map<string, number> {
    return this.store.instanceCountsByImage();
  }

  get(ref: string): InstanceRecord {
    return resolveRef('instance', ref, this.store.listInstances());
  }

  private provider(inst: { provider: string }): Provider {
    const p = this.providers.get(inst.provider);
    if (!p) throw unavailable('PROVIDER_GONE', `provider ${inst.provider} is not configured in this daemon`);
    return p;
  }

  /** Checks a run/create request and builds the record; nothing is stored or started yet. */
  private async prepare(req: RunRequest, state: InstanceRecord['status']['state']) {
    const image = this.images.get(req.image);
    const name = req.name || `${image.name}-${newId().slice(0, 8)}`;
    checkName('instance', name);
    if (this.store.listInstances().some((i) => i.name === name) || this.naming.has(name))
      throw alreadyExists('INSTANCE_EXISTS', `an instance named ${name} already exists`, 'pick another --name, or remove the old one (unik rm)');
    const mounts = this.volumes.resolveForRun(req.mounts ?? {}, image.manifest.mountPoints, !!image.manifest.mountPointsOptional);
    const env = req.env ?? {};
    checkEnv({ ...image.manifest.env, ...env });
    const memoryMb = req.memoryMb || image.manifest.defaultMemoryMb;
    if (!Number.isInteger(memoryMb)) throw invalid('BAD_MEMORY', `memory must be a whole number of MB, got ${memoryMb}`);
    const spec: InstanceSpec = { env, memoryMb, ports: (req.ports ?? []).map(toPort), args: req.args ?? [], autoRemove: !!req.autoRemove, labels: req.labels ?? {} };
    const provider = this.provider(image);
    await provider.preflight(spec);
    // may make the default network (its own record and bridge): before this instance's record
    const network = await this.networks.forRun(req.network);
    const inst: InstanceRecord = {
      id: newId(),
      name,
      imageId: image.id,
      provider: image.provider,
      created: new Date().toISOString(),
      spec,
      status: { state, pid: null, exitCode: null, error: '', startedAt: null, finishedAt: null, accel: '' },
    };
    /** stores the record and its volume attachments in one transaction */
    const commit = () =>
      this.store.tx(() => {
        // the address is taken in the same transaction that stores the instance: no two runs get one
        if (network !== USER_MODE) inst.spec.network = this.networks.allocate(network, inst.id);
        this.store.insertInstance(inst);
        for (const m of mounts) {
          // re-checked inside the transaction: another run may have taken it meanwhile
          if (this.volumes.get(m.volume.id).attachment) throw failedPrecondition('VOLUME_ATTACHED', `volume ${m.volume.name} was attached elsewhere meanwhile`);
          this.store.setAttachment(m.volume.id, { instanceId: inst.id, mountPoint: m.mountPoint });
        }
      });
    const disks = mounts.map((m) => ({ id: m.volume.id, file: this.volumes.file(m.volume), type: m.volume.type, mountPoint: m.mountPoint }));
    // every check passed: hold the name until the record is stored (or the attempt fails)
    this.naming.add(name);
    return { image, inst, provider, commit, disks, release: () => this.naming.delete(name) };
  }

  /** Creates an instance without starting it (Docker's create). */
  async create(req: RunRequest): Promise<InstanceRecord> {
    const { inst, commit, release } = await this.prepare(req, 'created');
    try {
      commit();
    } finally {
      release();
    }
    this.events.emit('change', inst);
    this.announce(inst, 'create');
    return inst;
  }

  /**
   * Creates and boots an instance; if the VM cannot start, nothing is stored. The record (and its
   * volume attachments) is committed before the VM starts, marked `creating`: a daemon that dies
   * before the VM is up undoes it on start-up (reconcile), so no VM ever runs without a record.
   */
  async run(req: RunRequest): Promise<InstanceRecord> {
    const { image, inst, provider, commit, disks, release } = await this.prepare(req, 'pending');
    inst.status.phase = 'creating';
    return this.ops.run(inst.id, async () => {
      try {
        commit();
      } finally {
        release();
      }
      try {
        // its tap's anti-spoofing rules exist before the VM does
        if (inst.spec.network) await this.networks.syncRules();
        const asked = Date.now();
        const { pid, accel, boot } = await provider.start(inst, image, { volumes: disks, nic: this.networks.nicFor(inst) }, () => void this.refresh(inst.id));
        this.setStatus(inst, { ...inst.status, phase: undefined, pid, accel, startedAt: new Date().toISOString() });
        this.announce(inst, 'create');
        this.started(inst, asked, boot, accel);
      } catch (e) {
        await this.forget(inst).catch((undo: Error) => {
          throw new Error(`${(e as Error).message}; undoing the run failed too (${undo.message}), the daemon finishes it at its next start`, { cause: e });
        });
        throw e;
      }
      return (await this.observe(inst.id)) ?? inst;
    });
  }

  /** Sends a signal to the app (SIGKILL ends the VM at once). */
  async signal(ref: string, signal: number): Promise<InstanceRecord> {
    return this.exclusive(ref, async (inst) => {
      if (inst.status.state !== 'running' && inst.status.state !== 'pending')
        throw failedPrecondition('INSTANCE_NOT_RUNNING', `instance ${inst.name} is not running`);
      await this.provider(inst).signal(inst, signal);
      this.announce(inst, 'kill', { signal: String(signal) });
      return (await this.observe(inst.id)) ?? inst;
    });
  }

  async start(ref: string): Promise<InstanceRecord> {
    return this.exclusive(ref, async (inst) => {
      if (inst.status.state === 'running' || inst.status.state === 'pending') return inst;
      const image = this.images.list().find((i) => i.id === inst.imageId);
      if (!image) throw failedPrecondition('IMAGE_GONE', `the image of instance ${inst.name} was deleted`);
      const provider = this.provider(inst);
      const disks = this.volumes.mountsFor(inst, image.manifest.mountPoints, !!image.manifest.mountPointsOptional);
      const nic = this.networks.nicFor(inst);
      await provider.preflight(inst.spec);
      // an instance made by Docker's create has its address, not yet its tap's rules
      if (nic) await this.networks.syncRules();
      const before = inst.status;
      // recorded before the VM starts: a daemon that dies meanwhile settles it on start-up
      this.store.updateInstanceStatus(inst.id, { ...before, state: 'pending', pid: null, phase: 'starting' });
      try {
        const asked = Date.now();
        const { pid, accel, boot } = await provider.start(inst, image, { volumes: disks, nic }, () => void this.refresh(inst.id));
        this.setStatus(inst, { state: 'pending', pid, accel, exitCode: null, error: '', startedAt: new Date().toISOString(), finishedAt: null });
        this.started(inst, asked, boot, accel);
      } catch (e) {
        this.store.updateInstanceStatus(inst.id, before);
        throw e;
      }
      return (await this.observe(inst.id)) ?? inst;
    });
  }

  async stop(ref: string, graceMs = 10_000): Promise<InstanceRecord> {
    return this.exclusive(ref, async (inst) => {
      if (inst.status.state === 'stopped' || inst.status.state === 'error' || inst.status.state === 'created') return inst;
      await this.provider(inst).stop(inst, graceMs);
      const seen = await this.provider(inst).inspect(inst);
      this.setStatus(inst, { ...inst.status, state: 'stopped', pid: null, exitCode: seen.exitCode, finishedAt: new Date().toISOString() });
      this.announce(inst, 'stop');
      return this.store.getInstance(inst.id)!;
    });
  }

  async delete(ref: string, force: boolean): Promise<InstanceRecord> {
    return this.exclusive(ref, async (inst) => {
      if ((inst.status.state === 'running' || inst.status.state === 'pending') && !force)
        throw failedPrecondition('INSTANCE_RUNNING', `instance ${inst.name} is ${inst.status.state}`, 'stop it first (unik stop), or remove it with -f');
      await this.remove(inst);
      return inst;
    });
  }

  /**
   * Runs fn on the fresh record of an instance, alone: no other start, stop, rm, signal or
   * attach of it runs meanwhile, and the watcher leaves it be.
   */
  async exclusive<T>(ref: string, fn: (inst: InstanceRecord) => Promise<T>): Promise<T> {
    const { id } = this.get(ref);
    return this.ops.run(id, async () => {
      const inst = this.store.getInstance(id);
      if (!inst) throw notFound('INSTANCE_NOT_FOUND', `instance ${ref} was removed meanwhile`);
      return fn((await this.observe(id)) ?? inst);
    });
  }

  /**
   * Kills whatever VM the instance has (a VM may run even if the record disagrees), then forgets
   * it. Marked `removing` first: a daemon that dies half-way finishes the removal on start-up.
   */
  private async remove(inst: InstanceRecord): Promise<void> {
    this.store.updateInstanceStatus(inst.id, { ...inst.status, phase: 'removing' });
    await this.forget(inst);
    this.events.emit('removed', inst.id);
    // a VM removed while it ran was killed (as Docker's rm -f: 137)
    if (isLive(inst.status.state)) this.died(inst, { ...inst.status, state: 'stopped', exitCode: 137 });
    this.announce(inst, 'destroy');
  }

  /** Stops the VM, deletes the record and its volume attachments in one transaction, then the files. */
  private async forget(inst: InstanceRecord): Promise<void> {
    const provider = this.provider(inst);
    await provider.stop(inst, 0);
    this.store.tx(() => {
      this.store.detachAll(inst.id);
      this.store.deleteInstance(inst.id);
    });
    forgetLog(provider.logFile(inst));
    await provider.remove(inst);
    // its tap's rules go too (stale ones would only name a tap that no longer exists)
    if (inst.spec.network) await this.networks.syncRules().catch(() => undefined);
  }

  async deleteAllOfImage(imageId: string): Promise<void> {
    for (const inst of this.store.listInstances().filter((i) => i.imageId === imageId)) await this.ops.run(inst.id, () => this.remove(inst));
  }

  /**
   * Moves a stopped instance to another network (or to user mode): a VM's one network interface
   * is fixed while it runs. Its new address is taken in the transaction that records it.
   */
  async setNetwork(ref: string, network: string): Promise<InstanceRecord> {
    return this.exclusive(ref, async (inst) => {
      if (inst.status.state === 'running' || inst.status.state === 'pending')
        throw failedPrecondition('INSTANCE_RUNNING', `instance ${inst.name} is ${inst.status.state}: its network interface is fixed while it runs`, 'stop it first (unik stop), then connect it');
      const target = await this.networks.forRun(network);
      if (target !== USER_MODE && inst.spec.network?.networkId === target.id) return inst;
      this.store.tx(() => {
        const spec = { ...inst.spec };
        delete spec.network;
        if (target !== USER_MODE) spec.network = this.networks.allocate(target, inst.id);
        this.store.updateInstanceSpec(inst.id, spec);
        inst.spec = spec;
      });
      await this.networks.syncRules();
      this.events.emit('change', inst);
      return inst;
    });
  }

  /** The record for an id, if any (volumes ask who they are attached to). */
  byId(id: string): InstanceRecord | undefined {
    return this.store.getInstance(id);
  }

  logFile(ref: string): { inst: InstanceRecord; file: string } {
    const inst = this.get(ref);
    return { inst, file: this.provider(inst).logFile(inst) };
  }

  /** Brings one record in line with its VM; returns the record as it now stands. */
  async refresh(id: string): Promise<InstanceRecord | undefined> {
    // busy: the operation under way says what the state is; else observe, holding the instance
    // so no operation starts between the look and the write
    if (this.ops.held(id)) return this.store.getInstance(id);
    return this.ops.run(id, () => this.observe(id));
  }

  /** refresh(), for the holder of the instance's lock. */
  private async observe(id: string): Promise<InstanceRecord | undefined> {
    const inst = this.store.getInstance(id);
    if (!inst || inst.status.phase) return inst;
    if (inst.status.state !== 'pending' && inst.status.state !== 'running') return inst;
    const provider = this.providers.get(inst.provider);
    if (!provider) return inst;
    // a provider that cannot answer now (libvirtd down) leaves the record as last known
    const seen = await provider.inspect(inst).catch(() => undefined);
    if (!seen) return inst;
    stampLog(provider.logFile(inst));
    const now = new Date().toISOString();
    if (seen.alive) {
      if (seen.ready && inst.status.state === 'pending') {
        this.setStatus(inst, { ...inst.status, state: 'running' });
        this.ready(inst, seen.readyAt);
      } else if (!seen.ready && inst.status.state === 'pending' && inst.status.startedAt && Date.now() - Date.parse(inst.status.startedAt) > BOOT_DEADLINE_MS) {
        await provider.stop(inst, 0);
        this.setStatus(inst, { ...inst.status, state: 'error', pid: null, finishedAt: now, error: `the guest did not start the app within ${BOOT_DEADLINE_MS / 1000} s; its console is in \`unik logs ${inst.name}\`` });
      }
    } else if (seen.exitCode !== null) {
      this.setStatus(inst, { ...inst.status, state: 'stopped', pid: null, exitCode: seen.exitCode, finishedAt: now });
    } else {
      const error = seen.ready ? 'the VM ended without reporting an exit status (killed from outside?)' : `the VM ended before the app started; its console is in \`unik logs ${inst.name}\``;
      this.setStatus(inst, { ...inst.status, state: seen.ready ? 'stopped' : 'error', pid: null, finishedAt: now, error });
    }
    return this.store.getInstance(id);
  }

  private setStatus(inst: InstanceRecord, status: InstanceStatus): void {
    const was = inst.status.state;
    this.store.updateInstanceStatus(inst.id, status);
    inst.status = status;
    this.events.emit('change', inst);
    if (isLive(was) && !isLive(status.state)) this.died(inst, status);
    // after whatever operation holds the instance now, if it is still ended then
    if (inst.spec.autoRemove && (status.state === 'stopped' || status.state === 'error'))
      void this.ops
        .run(inst.id, async () => {
          const now = this.store.getInstance(inst.id);
          if (now && (now.status.state === 'stopped' || now.status.state === 'error') && !now.status.phase) await this.remove(now);
        })
        .catch(() => {});
  }

  /** An instance event, carrying what Docker's container events do: its name, image and labels. */
  private announce(inst: InstanceRecord, action: EventAction<'instance'>, extra: Record<string, string> = {}): void {
    const image = this.images.list().find((i) => i.id === inst.imageId)?.name ?? inst.imageId;
    this.bus.emit({ type: 'instance', action, id: inst.id, attributes: { ...inst.spec.labels, ...extra, image, name: inst.name } });
  }

  /** The VM runs: its boot is timed from `asked` until the app is up (ready). */
  private started(inst: InstanceRecord, asked: number, boot: 'restore' | 'cold' | undefined, accel: string): void {
    const kind = boot ?? 'cold';
    this.boots.set(inst.id, { at: asked, kind });
    this.announce(inst, 'start', { boot: kind, accel });
  }

  /** The app was started: readyAt is when the guest said so (else: now, as the watcher saw it). */
  private ready(inst: InstanceRecord, readyAt: string | undefined): void {
    const b = this.boots.get(inst.id);
    this.boots.delete(inst.id);
    const at = readyAt ? Date.parse(readyAt) : Date.now();
    this.announce(inst, 'ready', b ? { boot: b.kind, bootDuration: seconds(at - b.at) } : {});
  }

  /** The VM ended: the exit code as `docker wait` says it, and how long it ran. */
  private died(inst: InstanceRecord, status: InstanceStatus): void {
    this.boots.delete(inst.id);
    const exitCode = status.exitCode ?? (status.state === 'error' ? 255 : 0);
    const ran = inst.status.startedAt ? seconds(Date.now() - Date.parse(inst.status.startedAt)) : undefined;
    this.announce(inst, 'die', { exitCode: String(exitCode), ...(ran ? { execDuration: ran } : {}) });
  }

  /**
   * On daemon start: finish or undo what a dead daemon left half done, adopt live VMs (through
   * their supervisors), settle dead ones, and stop and drop VMs and files that have no record.
   */
  async reconcile(log: (msg: string) => void = () => {}): Promise<void> {
    for (const inst of this.store.listInstances()) {
      const provider = this.providers.get(inst.provider);
      if (!provider) continue;
      try {
        await this.reconcileOne(inst, provider);
      } catch (e) {
        // one provider that cannot answer (libvirtd down) must not keep the daemon, and every
        // other instance, from starting: the record stays as it is, the watcher looks again
        log(`cannot settle instance ${inst.name} now: ${(e as Error).message}`);
      }
    }
    const known = new Set(this.store.listInstances().map((i) => i.id));
    if (existsSync(this.paths.instances))
      for (const entry of await readdir(this.paths.instances)) {
        if (known.has(entry)) continue;
        try {
          for (const p of this.providers.values()) await p.abandon?.(join(this.paths.instances, entry));
        } catch (e) {
          // its folder stays, so the next start tries again
          log(`cannot end the VM of an unrecorded instance folder ${entry} now: ${(e as Error).message}`);
          continue;
        }
        await rm(join(this.paths.instances, entry), { recursive: true, force: true });
      }
    await mkdir(this.paths.instances, { recursive: true });
  }

  private async reconcileOne(inst: InstanceRecord, provider: Provider): Promise<void> {
    const phase = inst.status.phase;
    if (phase === 'removing') {
      await this.forget(inst);
    } else if (phase === 'creating' || phase === 'starting') {
      const adopted = await provider.adopt?.(inst);
      if (adopted) {
        this.store.updateInstanceStatus(inst.id, { ...inst.status, phase: undefined, pid: adopted.pid, accel: adopted.accel, startedAt: inst.status.startedAt ?? new Date().toISOString() });
      } else if (phase === 'creating') {
        await this.forget(inst); // the run never answered: as if it had failed
      } else {
        await provider.stop(inst, 0);
        this.store.updateInstanceStatus(inst.id, { ...inst.status, state: 'stopped', pid: null, phase: undefined, error: 'the daemon stopped while starting it; start it again' });
      }
    }
    await this.refresh(inst.id);
  }

  watch(): void {
    const tick = async () => {
      // only the live ones, picked by the store: stopped records cost nothing per tick
      for (const id of this.store.liveInstanceIds()) await this.refresh(id).catch(() => {});
      this.timer = setTimeout(tick, WATCH_INTERVAL_MS);
    };
    this.timer = setTimeout(tick, WATCH_INTERVAL_MS);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

function isLive(state: InstanceStatus['state']): boolean {
  return state === 'pending' || state === 'running';
}

/** Linux's execve limits: 128 KiB per string, and argv + env within a quarter of the 8 MiB stack. */
const MAX_ENV_ENTRY = 128 * 1024;
const MAX_ENV_TOTAL = 1536 * 1024;

function checkEnv(env: Record<string, string>): void {
  let total = 0;
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw invalid('BAD_ENV', `bad environment variable name ${JSON.stringify(k)}`, 'names are letters, digits and "_", not starting with a digit');
    if (v.includes('\0')) throw invalid('BAD_ENV', `environment variable ${k} contains a NUL byte`);
    const size = Buffer.byteLength(`${k}=${v}`) + 1;
    if (size > MAX_ENV_ENTRY) throw invalid('ENV_TOO_LARGE', `environment variable ${k} is ${size} bytes; Linux refuses any one entry over ${MAX_ENV_ENTRY} bytes`, 'pass large data in a file (a volume) instead');
    total += size;
  }
  if (total > MAX_ENV_TOTAL) throw invalid('ENV_TOO_LARGE', `the environment is ${total} bytes in all; at most ${MAX_ENV_TOTAL} fit beside the program's arguments`);
}

function toPort(p: string | Partial<PortForward>): PortForward {
  if (typeof p === 'string') return parsePort(p);
  if (!p.hostPort || !p.guestPort) throw invalid('BAD_PORT', `bad port mapping ${JSON.stringify(p)}`, 'give HostPort and GuestPort');
  return parsePort(`${p.hostIp ?? '127.0.0.1'}:${p.hostPort}:${p.guestPort}/${p.protocol ?? 'tcp'}`);
}
