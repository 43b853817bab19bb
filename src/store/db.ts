import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { migrations } from './migrations.js';
import { failedPrecondition } from '../model/errors.js';
import type { ImageManifest, ImageRecord, InstanceRecord, InstanceSpec, InstanceStatus, NetworkRecord, VolumeRecord, VolumeType } from '../model/types.js';

/** The state store: every change is one SQLite transaction, so it is never half-written. */
export class Store {
  private readonly db: Database.Database;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > migrations.length)
      throw failedPrecondition(
        'STORE_TOO_NEW',
        `the state store was written by a newer unik (schema ${version}, this one knows ${migrations.length})`,
        'upgrade unik, or point UNIK_HOME elsewhere',
      );
    for (let v = version; v < migrations.length; v++) {
      this.db.transaction(() => {
        this.db.exec(migrations[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Runs fn in one transaction: all of its writes land, or none. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    this.db.close();
  }

  // images

  listImages(): ImageRecord[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY name').all() as ImageRow[]).map(imageFromRow);
  }

  /** Image names by id, without reading (and parsing) their manifests. */
  imageNames(): Map<string, string> {
    return new Map((this.db.prepare('SELECT id, name FROM images').all() as { id: string; name: string }[]).map((r) => [r.id, r.name]));
  }

  insertImage(img: ImageRecord): void {
    this.db
      .prepare('INSERT INTO images (id, name, provider, size_bytes, created, manifest) VALUES (?, ?, ?, ?, ?, ?)')
      .run(img.id, img.name, img.provider, img.sizeBytes, img.created, JSON.stringify(img.manifest));
  }

  deleteImage(id: string): void {
    this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
  }

  // instances

  listInstances(): InstanceRecord[] {
    return (this.db.prepare('SELECT * FROM instances ORDER BY created').all() as InstanceRow[]).map(instanceFromRow);
  }

  /**
   * Ids of the instances recorded as pending or running: the only ones the watcher observes.
   * Found through the index on the state (migration 4): the stopped ones, any number of them,
   * are not read at all.
   */
  liveInstanceIds(): string[] {
    return (this.db.prepare(`SELECT id FROM instances WHERE json_extract(status, '$.state') IN ('pending', 'running') ORDER BY created`).all() as { id: string }[]).map((r) => r.id);
  }

  /** How many instances each image has (by image id; images with none are absent). */
  instanceCountsByImage(): Map<string, number> {
    return new Map((this.db.prepare('SELECT image_id, count(*) AS n FROM instances GROUP BY image_id').all() as { image_id: string; n: number }[]).map((r) => [r.image_id, r.n]));
  }

  getInstance(id: string): InstanceRecord | undefined {
    const row = this.db.prepare('SELECT * FROM instances WHERE id = ?').get(id) as InstanceRow | undefined;
    return row && instanceFromRow(row);
  }

  insertInstance(inst: InstanceRecord): void {
    this.db
      .prepare('INSERT INTO instances (id, name, image_id, provider, created, spec, status) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(inst.id, inst.name, inst.imageId, inst.provider, inst.created, JSON.stringify(inst.spec), JSON.stringify(inst.status));
  }

  updateInstanceStatus(id: string, status: InstanceStatus): void {
    this.db.prepare('UPDATE instances SET status = ? WHERE id = ?').run(JSON.stringify(status), id);
  }

  deleteInstance(id: string): void {
    this.db.prepare('DELETE FROM instances WHERE id = ?').run(id);
  }

  // volumes

  listVolumes(): VolumeRecord[] {
    return (this.db.prepare('SELECT * FROM volumes ORDER BY name').all() as VolumeRow[]).map(volumeFromRow);
  }

  insertVolume(v: VolumeRecord): void {
    this.db
      .prepare('INSERT INTO volumes (id, name, provider, type, size_bytes, created, instance_id, mount_point) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(v.id, v.name, v.provider, v.type, v.sizeBytes, v.created, v.attachment?.instanceId ?? null, v.attachment?.mountPoint ?? null);
  }

  setAttachment(volumeId: string, attachment: VolumeRecord['attachment']): void {
    this.db.prepare('UPDATE volumes SET instance_id = ?, mount_point = ? WHERE id = ?').run(attachment?.instanceId ?? null, attachment?.mountPoint ?? null, volumeId);
  }

  /** Releases every volume of an instance (their data stays). */
  detachAll(instanceId: string): void {
    this.db.prepare('UPDATE volumes SET instance_id = NULL, mount_point = NULL WHERE instance_id = ?').run(instanceId);
  }

  deleteVolume(id: string): void {
    this.db.prepare('DELETE FROM volumes WHERE id = ?').run(id);
  }

  /** Changes an instance's spec (its network, while it is not running). */
  updateInstanceSpec(id: string, spec: InstanceSpec): void {
    this.db.prepare('UPDATE instances SET spec = ? WHERE id = ?').run(JSON.stringify(spec), id);
  }

  // networks

  listNetworks(): NetworkRecord[] {
    return (this.db.prepare('SELECT * FROM networks ORDER BY created').all() as NetworkRow[]).map((r) => ({
      id: r.id,
      name: r.name,
      driver: 'bridge',
      subnet: r.subnet,
      gateway: r.gateway,
      bridge: r.bridge,
      created: r.created,
      labels: JSON.parse(r.labels) as Record<string, string>,
    }));
  }

  insertNetwork(n: NetworkRecord): void {
    this.db
      .prepare('INSERT INTO networks (id, name, driver, subnet, gateway, bridge, created, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(n.id, n.name, n.driver, n.subnet, n.gateway, n.bridge, n.created, JSON.stringify(n.labels));
  }

  deleteNetwork(id: string): void {
    this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
  }
}

interface NetworkRow {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  bridge: string;
  created: string;
  labels: string;
}

interface VolumeRow {
  id: string;
  name: string;
  provider: string;
  type: string;
  size_bytes: number;
  created: string;
  instance_id: string | null;
  mount_point: string | null;
}

function volumeFromRow(r: VolumeRow): VolumeRecord {
  return {
    id: r.id,
    name: r.name,
    provider: r.provider,
    type: r.type as VolumeType,
    sizeBytes: r.size_bytes,
    created: r.created,
    attachment: r.instance_id && r.mount_point ? { instanceId: r.instance_id, mountPoint: r.mount_point } : null,
  };
}

interface ImageRow {
  id: string;
  name: string;
  provider: string;
  size_bytes: number;
  created: string;
  manifest: string;
}

interface InstanceRow {
  id: string;
  name: string;
  image_id: string;
  provider: string;
  created: string;
  spec: string;
  status: string;
}

function imageFromRow(r: ImageRow): ImageRecord {
  return { id: r.id, name: r.name, provider: r.provider, sizeBytes: r.size_bytes, created: r.created, manifest: JSON.parse(r.manifest) as ImageManifest };
}

function instanceFromRow(r: InstanceRow): InstanceRecord {
  return {
    id: r.id,
    name: r.name,
    imageId: r.image_id,
    provider: r.provider,
    created: r.created,
    spec: JSON.parse(r.spec) as InstanceSpec,
    status: JSON.parse(r.status) as InstanceStatus,
  };
}
