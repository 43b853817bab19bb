import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Core } from '../../src/core/core.js';
import { unikPaths } from '../../src/model/paths.js';
import type { ImageRecord, InstanceRecord, InstanceState } from '../../src/model/types.js';
import { Store } from '../../src/store/db.js';

// What the fuzzed daemon holds, so generated requests hit real records and not only 404s:
// one image, instances in each resting state, a volume. The image is deliberately damaged (its
// kernel and root files are missing): a request that is valid enough to boot a VM stops at
// "image files missing" instead of starting QEMU, which keeps every case short.

export const IMAGE_NAME = 'fuzz-img';
export const IMAGE_ID = 'fa11ed00'.repeat(8);
export const MOUNT_POINT = '/data';
export const VOLUME_NAME = 'fuzz-vol';
export const INSTANCES: { name: string; id: string; state: InstanceState }[] = [
  { name: 'fuzz-created', id: 'c0ffee01'.repeat(8), state: 'created' },
  { name: 'fuzz-stopped', id: 'c0ffee02'.repeat(8), state: 'stopped' },
  { name: 'fuzz-error', id: 'c0ffee03'.repeat(8), state: 'error' },
];

export interface Sandbox {
  /** everything lives under here; removed by the caller */
  root: string;
  home: string;
  /** hostile tar entries aim here; it must hold only the secret at the end */
  outside: string;
  /** a file outside the home whose bytes must never show up in an answer or under the home */
  secretFile: string;
  secret: string;
}

export function makeSandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), 'unik-fuzz-'));
  const home = join(root, 'home');
  const outside = join(root, 'outside');
  mkdirSync(outside, { recursive: true });
  const secret = `FUZZ-SECRET-${randomBytes(16).toString('hex')}`;
  const secretFile = join(outside, 'secret.txt');
  writeFileSync(secretFile, secret + '\n');
  return { root, home, outside, secretFile, secret };
}

/** An image record that no build made (no kernel or root on disk): for tests of the store and the APIs. */
export function fakeImage(o: { id: string; name: string; manifestId?: string; sizeBytes?: number; env?: Record<string, string>; mountPoints?: string[]; ports?: number[] }): ImageRecord {
  const created = '2024-01-01T00:00:00.000Z';
  return {
    id: o.id,
    name: o.name,
    provider: 'qemu',
    sizeBytes: o.sizeBytes ?? 1,
    created,
    manifest: {
      schemaVersion: 1,
      id: o.manifestId ?? o.id,
      name: o.name,
      created,
      arch: 'x86_64',
      base: 'linux',
      language: 'go',
      compiler: 'linux-go-qemu',
      provider: 'qemu',
      kernel: { file: 'kernel', configHash: '0'.repeat(16), fragments: ['base'], sizeBytes: 1 },
      root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: 1 },
      argv: ['/app'],
      cwd: '/',
      env: o.env ?? {},
      mountPoints: o.mountPoints ?? [],
      defaultMemoryMb: 64,
      ...(o.ports ? { ports: o.ports } : {}),
    },
  };
}

function imageRecord(): ImageRecord {
  return fakeImage({ id: IMAGE_ID, name: IMAGE_NAME, sizeBytes: 1234, env: { GREETING: 'hello' }, mountPoints: [MOUNT_POINT], ports: [8080] });
}

function instanceRecord(f: (typeof INSTANCES)[number]): InstanceRecord {
  return {
    id: f.id,
    name: f.name,
    imageId: IMAGE_ID,
    provider: 'qemu',
    created: '2024-01-01T00:00:01.000Z',
    spec: { env: { A: 'b' }, memoryMb: 64, ports: [{ hostIp: '127.0.0.1', hostPort: 18080, guestPort: 8080, protocol: 'tcp' }], args: [], autoRemove: false, labels: { fuzz: '1' } },
    status: {
      state: f.state,
      pid: null,
      exitCode: f.state === 'stopped' ? 0 : null,
      error: f.state === 'error' ? 'the VM ended before the app started' : '',
      startedAt: f.state === 'created' ? null : '2024-01-01T00:00:02.000Z',
      finishedAt: f.state === 'created' ? null : '2024-01-01T00:00:03.000Z',
      accel: f.state === 'created' ? '' : 'tcg',
    },
  };
}

/**
 * Puts back whichever fixture a request deleted, straight into the store (a second handle on
 * the same SQLite file) so the next case finds it again. Returns how many it restored.
 */
export class Fixtures {
  private readonly store: Store;
  private readonly paths;

  constructor(home: string) {
    this.paths = unikPaths(home);
    this.store = new Store(this.paths.db);
  }

  /** the records only; volumes need the core (mkfs), see ensure() */
  seedRecords(): number {
    let restored = 0;
    if (!this.store.listImages().some((i) => i.id === IMAGE_ID)) {
      // a name taken by a fuzz-made image blocks the fixture: that image goes
      const clash = this.store.listImages().find((i) => i.name === IMAGE_NAME);
      if (clash) this.store.deleteImage(clash.id);
      this.store.insertImage(imageRecord());
      mkdirSync(join(this.paths.images, IMAGE_ID), { recursive: true });
      restored++;
    }
    for (const f of INSTANCES) {
      if (this.store.getInstance(f.id)) continue;
      const clash = this.store.listInstances().find((i) => i.name === f.name);
      if (clash) this.store.tx(() => (this.store.detachAll(clash.id), this.store.deleteInstance(clash.id)));
      this.store.insertInstance(instanceRecord(f));
      const dir = join(this.paths.instances, f.id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'console.log'), 'booting\nlistening on :8080\n\u00e9\u4e2d \x1b[31mred\x1b[0m\n');
      restored++;
    }
    return restored;
  }

  async ensure(core: Core): Promise<number> {
    let restored = this.seedRecords();
    const vol = this.store.listVolumes().find((v) => v.name === VOLUME_NAME);
    if (!vol || !existsSync(core.volumes.file(vol))) {
      if (vol) this.store.deleteVolume(vol.id);
      await core.volumes.create({ name: VOLUME_NAME, sizeMb: 2 });
      restored++;
    }
    return restored;
  }

  close(): void {
    this.store.close();
  }
}
