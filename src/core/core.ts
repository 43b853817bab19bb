import { mkdir } from 'node:fs/promises';
import { compilers } from '../compilers/index.js';
import { createProviders, type ProviderOptions } from '../providers/index.js';
import type { Provider, ProviderInfo } from '../providers/types.js';
import { Store } from '../store/db.js';
import { lockHome } from '../store/home-lock.js';
import { ImageService } from './images.js';
import { InstanceService } from './instances.js';
import { VolumeService } from './volumes.js';
import { HubService } from './hub.js';
import { NetworkService } from './networks.js';
import { sweepHome } from './sweep.js';
import { EventBus } from './events.js';
import { Metrics } from './metrics.js';
import { unikPaths, type UnikPaths } from '../model/paths.js';
import type { HostCheck, ProgressFn, VolumeRecord } from '../model/types.js';
import { hostChecks } from './doctor.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { invalid } from '../model/errors.js';
import { exportImage } from '../export/export.js';
import { FORMATS, type ExportFormat } from '../export/formats.js';
import type { Firmware } from '../export/disk.js';

export interface CompilerInfo {
  /** the 2016 triple: base-language-provider */
  name: string;
  base: string;
  language: string;
  provider: string;
  description: string;
}

/** Everything the API dialects call: one way in. */
export interface Core {
  paths: UnikPaths;
  images: ImageService;
  instances: InstanceService;
  volumes: VolumeService;
  networks: NetworkService;
  hub: HubService;
  /** what happened: every change of state, as API event streams and metrics see it */
  events: EventBus;
  metrics: Metrics;
  /** an image as a bootable disk for a platform (see src/export); the caller removes it with cleanup() */
  exportImage(ref: string, format: string, firmware: string, progress?: ProgressFn): Promise<{ file: string; fileName: string; cleanup(): Promise<void> }>;
  /** attaches a volume to a stopped instance at one of its image's mount points */
  attachVolume(volume: string, instance: string, mountPoint: string): Promise<VolumeRecord>;
  providers(): Promise<ProviderInfo[]>;
  compilers(): CompilerInfo[];
  /** what this host has and lacks to build and run, each problem with its fix (`unik doctor`); changes nothing */
  doctor(): Promise<HostCheck[]>;
  close(): void;
}

/**
 * Opens a home: takes its lock first (one core per home, across processes and within one), so a
 * second daemon fails with HOME_LOCKED before it creates, sweeps or migrates anything; then
 * sweeps what a crash left and reconciles the store with the VMs that are really running.
 */
export async function createCore(opts: { home?: string; log?: (msg: string) => void; watch?: boolean } & ProviderOptions = {}): Promise<Core> {
  const paths = unikPaths(opts.home);
  const log = opts.log ?? (() => {});
  const lock = lockHome(paths.home);
  let store: Store | undefined;
  try {
    for (const d of [paths.home, paths.images, paths.instances, paths.volumes, paths.cache, paths.tmp]) await mkdir(d, { recursive: true });
    store = new Store(paths.db);
    sweepHome({ paths, instanceIds: store.listInstances().map((i) => i.id), log });
  } catch (e) {
    store?.close();
    lock.release();
    throw e;
  }
  const providerList = createProviders(paths, log, { ...(opts.libvirtUri ? { libvirtUri: opts.libvirtUri } : {}) });
  const providers = new Map<string, Provider>(providerList.map((p) => [p.name, p]));
  const events = new EventBus();
  const images = new ImageService(store, paths, providers, events);
  const volumes = new VolumeService(store, paths, new Set(providers.keys()), events);
  const networks = new NetworkService(store, paths.home, log);
  const instances = new InstanceService(store, paths, providers, images, volumes, networks, events);
  const db = store;
  const metrics = new Metrics({ bus: events, instances: () => db.listInstances(), images: () => db.listImages(), volumes: () => db.listVolumes().length, providers });
  // DNS answers follow the instances: rebuilt after any change, never read per query
  instances.events.on('change', () => networks.invalidateNames());
  instances.events.on('removed', () => networks.invalidateNames());
  try {
    // the bridges, rules and DNS the records describe, before any VM is adopted or started
    await networks.restore();
    await images.sweep();
    await volumes.sweep();
    await instances.reconcile(log);
  } catch (e) {
    instances.close();
    await networks.close();
    store.close();
    lock.release();
    throw e;
  }
  if (opts.watch !== false) {
    instances.watch();
    for (const p of providers.values()) p.warmUp?.(images.list().filter((i) => i.provider === p.name));
  }
  return {
    paths,
    images,
    instances,
    volumes,
    networks,
    hub: new HubService(paths, images, events),
    events,
    metrics,
    async attachVolume(volume, instance, mountPoint) {
      // alone with the instance: a start cannot slip in between the check and the attachment
      return instances.exclusive(instance, async (fresh) => {
        const image = images.list().find((i) => i.id === fresh.imageId);
        return volumes.attach(volume, fresh, mountPoint, image?.manifest.mountPoints ?? []);
      });
    },
    async exportImage(ref, format, firmware, progress) {
      if (!(FORMATS as readonly string[]).includes(format)) throw invalid('BAD_FORMAT', `unknown export format ${JSON.stringify(format)}`, `one of ${FORMATS.join(', ')}`);
      if (!['bios', 'uefi', 'both'].includes(firmware)) throw invalid('BAD_FIRMWARE', `unknown firmware ${JSON.stringify(firmware)}`, 'one of bios, uefi, both');
      const image = images.get(ref);
      const work = await mkdtemp(join(paths.tmp, 'export-'));
      const cleanup = () => rm(work, { recursive: true, force: true });
      try {
        const r = await exportImage({ image, imageDir: join(paths.images, image.id), kernelsDir: paths.kernels, format: format as ExportFormat, firmware: firmware as Firmware, work, ...(progress ? { progress } : {}) });
        return { ...r, cleanup };
      } catch (e) {
        await cleanup();
        throw e;
      }
    },
    providers: () => Promise.all(providerList.map((p) => p.info())),
    doctor: () => hostChecks({ paths, providers: providerList }),
    compilers: () =>
      providerList.flatMap((p) =>
        compilers.map((c) => ({ name: `linux-${c.language}-${p.name}`, base: 'linux', language: c.language, provider: p.name, description: c.description })),
      ),
    close() {
      for (const p of providers.values()) p.close?.();
      instances.close();
      void networks.close();
      store.close();
      lock.release();
    },
  };
}
