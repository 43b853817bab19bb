import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { detectFilesystem, dirBytes, makeFilesystem, sizeFor } from '../volumes/mkfs.js';
import type { Store } from '../store/db.js';
import { alreadyExists, conflict, failedPrecondition, invalid } from '../model/errors.js';
import { checkName, newId, resolveRef } from './ids.js';
import type { UnikPaths } from '../model/paths.js';
import { unpack } from './tarball.js';
import type { InstanceRecord, VolumeMount, VolumeRecord, VolumeType } from '../model/types.js';
import { EventBus } from './events.js';

export interface CreateVolumeRequest {
  name: string;
  provider?: string;
  type?: string;
  /** MB; optional when data is given */
  sizeMb?: number;
  /** an uploaded tar(.gz) of files to put in it, or with raw the disk image itself; taken over and deleted */
  upload?: string;
  raw?: boolean;
}

const MiB = 1024 * 1024;
const TYPES: VolumeType[] = ['ext4', 'ext2', 'fat'];

/**
 * Volumes: disk image files under volumes/<id>/disk.img that instances mount. A volume is
 * attached to at most one instance, at one of the mount points its image declares; attach and
 * detach happen while the instance is stopped (no hot-plug yet).
 */
export class VolumeService {
  private readonly creating = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly paths: UnikPaths,
    private readonly providers: Set<string>,
    private readonly bus: EventBus = new EventBus(),
  ) {}

  list(): VolumeRecord[] {
    return this.store.listVolumes();
  }

  get(ref: string): VolumeRecord {
    return resolveRef('volume', ref, this.store.listVolumes());
  }

  file(v: { id: string }): string {
    return join(this.paths.volumes, v.id, 'disk.img');
  }

  /** What is wrong with a volume's files, if anything (e.g. deleted behind the daemon's back). */
  problem(v: VolumeRecord): string {
    return existsSync(this.file(v)) ? '' : `its disk file ${this.file(v)} is missing`;
  }

  async create(req: CreateVolumeRequest): Promise<VolumeRecord> {
    const work = join(this.paths.tmp, `volume-${newId().slice(0, 16)}`);
    try {
      checkName('volume', req.name);
      const provider = req.provider || 'qemu';
      if (!this.providers.has(provider)) throw invalid('UNKNOWN_PROVIDER', `unknown provider ${JSON.stringify(provider)}`, `available providers: ${[...this.providers].join(', ')}`);
      if (req.type && !TYPES.includes(req.type as VolumeType)) throw invalid('BAD_VOLUME_TYPE', `unknown volume type ${JSON.stringify(req.type)}`, `types: ${TYPES.join(', ')}`);
      if (req.sizeMb !== undefined && (!Number.isInteger(req.sizeMb) || req.sizeMb <= 0))
        throw invalid('BAD_VOLUME_SIZE', `volume size must be a whole number of MB above 0, got ${req.sizeMb}`);
      if (req.sizeMb === undefined && !req.upload) throw invalid('BAD_VOLUME_SIZE', 'give a size (MB) or data for the volume');
      if (req.raw && !req.upload) throw invalid('NO_TARFILE', 'a raw volume needs the disk image as the "tarfile" upload');
      if (this.store.listVolumes().some((v) => v.name === req.name) || this.creating.has(req.name))
        throw alreadyExists('VOLUME_EXISTS', `a volume named ${req.name} already exists`, 'pick another name, or delete the old one (unik delete-volume)');
      this.creating.add(req.name);

      const id = newId();
      const stage = join(this.paths.volumes, `.tmp-${id}`);
      await mkdir(stage, { recursive: true });
      await mkdir(work, { recursive: true });
      try {
        let type = (req.type as VolumeType | undefined) ?? 'ext4';
        let sizeBytes: number;
        const disk = join(stage, 'disk.img');
        if (req.raw) {
          type = await detectFilesystem(req.upload!);
          await rename(req.upload!, disk);
          sizeBytes = (await stat(disk)).size;
        } else {
          let fromDir: string | undefined;
          if (req.upload) {
            fromDir = join(work, 'data');
            await unpack(req.upload, fromDir, { allowEmpty: true });
          }
          const need = fromDir ? sizeFor(await dirBytes(fromDir), type) : 0;
          sizeBytes = req.sizeMb !== undefined ? req.sizeMb * MiB : need;
          if (sizeBytes < need) throw invalid('VOLUME_TOO_SMALL', `the data needs about ${Math.ceil(need / MiB)} MB; ${req.sizeMb} MB is too small`, 'give a larger size, or none to let unik pick one');
          await this.checkFree(sizeBytes);
          await makeFilesystem({ file: disk, type, sizeBytes, label: req.name, fromDir });
        }
        const record: VolumeRecord = { id, name: req.name, provider, type, sizeBytes, created: new Date().toISOString(), attachment: null };
        await rename(stage, join(this.paths.volumes, id));
        try {
          this.store.insertVolume(record);
        } catch (e) {
          await rm(join(this.paths.volumes, id), { recursive: true, force: true });
          throw e;
        }
        this.bus.emit({ type: 'volume', action: 'create', id, attributes: { name: record.name, type, driver: 'unik' } });
        return record;
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
    } finally {
      this.creating.delete(req.name);
      await rm(work, { recursive: true, force: true });
      if (req.upload) await rm(req.upload, { force: true });
    }
  }

  private async checkFree(bytes: number): Promise<void> {
    await mkdir(this.paths.volumes, { recursive: true });
    const fs = await statfs(this.paths.volumes);
    const free = fs.bavail * fs.bsize;
    if (bytes > free)
      throw invalid('VOLUME_TOO_LARGE', `a ${Math.ceil(bytes / MiB)} MB volume does not fit: ${Math.floor(free / MiB)} MB are free where volumes live (${this.paths.volumes})`, 'pick a smaller size, or free some disk space');
  }

  async delete(ref: string, force: boolean, instanceOf: (id: string) => InstanceRecord | undefined): Promise<VolumeRecord> {
    const v = this.get(ref);
    if (v.attachment) {
      const inst = instanceOf(v.attachment.instanceId);
      if (!force)
        throw failedPrecondition('VOLUME_ATTACHED', `volume ${v.name} is attached to instance ${inst?.name ?? v.attachment.instanceId} at ${v.attachment.mountPoint}`, 'detach it first (unik detach-volume), or delete with -f to detach it');
      if (inst && isLive(inst)) throw failedPrecondition('INSTANCE_RUNNING', `volume ${v.name} is in use by running instance ${inst.name}`, 'stop the instance first');
    }
    this.store.deleteVolume(v.id);
    await rm(join(this.paths.volumes, v.id), { recursive: true, force: true });
    this.bus.emit({ type: 'volume', action: 'destroy', id: v.id, attributes: { name: v.name, driver: 'unik' } });
    return v;
  }

  attach(ref: string, inst: InstanceRecord, mountPoint: string, declared: string[]): VolumeRecord {
    const v = this.get(ref);
    if (v.attachment) throw conflict('VOLUME_ATTACHED', `volume ${v.name} is already attached (to ${v.attachment.instanceId === inst.id ? inst.name : 'another instance'} at ${v.attachment.mountPoint})`, 'detach it first (unik detach-volume)');
    if (isLive(inst)) throw failedPrecondition('INSTANCE_RUNNING', `instance ${inst.name} is ${inst.status.state}; volumes are attached while it is stopped (no hot-plug yet)`, `stop it first: unik stop ${inst.name}`);
    checkMountPoint(mountPoint, declared);
    this.store.tx(() => {
      if (this.store.listVolumes().some((x) => x.attachment?.instanceId === inst.id && x.attachment.mountPoint === mountPoint))
        throw conflict('MOUNTPOINT_TAKEN', `instance ${inst.name} already has a volume at ${mountPoint}`, 'detach that one first');
      this.store.setAttachment(v.id, { instanceId: inst.id, mountPoint });
    });
    return this.get(v.id);
  }

  detach(ref: string, instanceOf: (id: string) => InstanceRecord | undefined): VolumeRecord {
    const v = this.get(ref);
    if (!v.attachment) throw failedPrecondition('VOLUME_NOT_ATTACHED', `volume ${v.name} is not attached`);
    const inst = instanceOf(v.attachment.instanceId);
    if (inst && isLive(inst))
      throw failedPrecondition('INSTANCE_RUNNING', `instance ${inst.name} is ${inst.status.state}; volumes are detached while it is stopped (no hot-plug yet)`, `stop it first: unik stop ${inst.name}`);
    this.store.setAttachment(v.id, null);
    return this.get(v.id);
  }

  /**
   * Resolves run's mounts (mount point → volume) against the image's declared mount points:
   * every declared one needs exactly one free volume, and nothing else is accepted.
   */
  resolveForRun(mounts: Record<string, string>, declared: string[], optional = false): { volume: VolumeRecord; mountPoint: string }[] {
    const out: { volume: VolumeRecord; mountPoint: string }[] = [];
    for (const [mp, ref] of Object.entries(mounts)) {
      checkMountPoint(mp, declared);
      const volume = this.get(ref);
      if (volume.attachment) throw conflict('VOLUME_ATTACHED', `volume ${volume.name} is already attached to another instance`, 'detach it first, or create another volume');
      const problem = this.problem(volume);
      if (problem) throw failedPrecondition('VOLUME_FILE_MISSING', `volume ${volume.name}: ${problem}`, 'delete the volume record (unik delete-volume) and create it again');
      if (out.some((o) => o.volume.id === volume.id)) throw invalid('VOLUME_TWICE', `volume ${volume.name} is given for two mount points`);
      out.push({ volume, mountPoint: mp });
    }
    const missing = optional ? [] : declared.filter((mp) => !(mp in mounts));
    if (missing.length) throw invalid('MOUNTPOINT_WITHOUT_VOLUME', `the image declares mount point(s) ${missing.join(', ')} and no volume was given for them`, `give one per mount point: --vol VOLUME:${missing[0]}`);
    return out;
  }

  /** The volumes an instance boots with; refuses to boot with a declared mount point empty or a disk gone. */
  mountsFor(inst: InstanceRecord, declared: string[], optional = false): VolumeMount[] {
    const attached = this.store.listVolumes().filter((v) => v.attachment?.instanceId === inst.id);
    const missing = optional ? [] : declared.filter((mp) => !attached.some((v) => v.attachment!.mountPoint === mp));
    if (missing.length)
      throw failedPrecondition('MOUNTPOINT_WITHOUT_VOLUME', `instance ${inst.name} has no volume at ${missing.join(', ')}`, `attach one: unik attach-volume VOLUME ${inst.name} ${missing[0]}`);
    return attached.map((v) => {
      const problem = this.problem(v);
      if (problem) throw failedPrecondition('VOLUME_FILE_MISSING', `volume ${v.name}: ${problem}`, 'detach and delete it, then attach another');
      return { id: v.id, file: this.file(v), type: v.type, mountPoint: v.attachment!.mountPoint };
    });
  }

  /** Removes volume folders with no record (a create cut short by a crash). */
  async sweep(): Promise<void> {
    if (!existsSync(this.paths.volumes)) return;
    const known = new Set(this.store.listVolumes().map((v) => v.id));
    for (const entry of await readdir(this.paths.volumes)) if (!known.has(entry)) await rm(join(this.paths.volumes, entry), { recursive: true, force: true });
  }
}

function isLive(inst: InstanceRecord): boolean {
  return inst.status.state === 'running' || inst.status.state === 'pending';
}

const RESERVED = ['/', '/proc', '/sys', '/dev', '/unik'];

/** Mount points are absolute, plain paths, declared by the image at build time. */
export function checkMountPoint(mp: string, declared?: string[]): void {
  if (!mp.startsWith('/') || mp.split('/').some((p) => p === '..' || p === '.') || /[\0:\s]/.test(mp) || mp.length > 200)
    throw invalid('BAD_MOUNTPOINT', `bad mount point ${JSON.stringify(mp)}`, 'use an absolute path such as /data');
  const norm = mp.replace(/\/+$/, '') || '/';
  if (RESERVED.some((r) => norm === r || (r !== '/' && norm.startsWith(r + '/')))) throw invalid('BAD_MOUNTPOINT', `mount point ${mp} is reserved for the system`);
  if (declared && !declared.includes(mp))
    throw invalid('UNKNOWN_MOUNTPOINT', `the image has no mount point ${mp}`, declared.length ? `its mount points: ${declared.join(', ')}` : 'it declares none: build it with --mountpoint');
}
