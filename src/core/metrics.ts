import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Provider } from '../providers/types.js';
import type { InstanceRecord, InstanceState } from '../model/types.js';
import type { EventBus, UnikEvent } from './events.js';

// The daemon's numbers in the Prometheus text format, through prom-client: what happened is
// counted from the event bus as it happens (boots, builds, every event); what is there now
// (instances by state, images, volumes, each VM's host memory) is read at scrape time; the API
// records its request latencies here. One registry per core: nothing global.

export const INSTANCE_STATES: readonly InstanceState[] = ['created', 'pending', 'running', 'stopped', 'error'];

/** from a restore (~1 s under TCG) to a cold boot of a large runtime (tens of s) */
const BOOT_BUCKETS = [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60];
/** from a cached Go build (seconds) to a kernel compile (minutes) */
const BUILD_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface MetricsSources {
  bus: EventBus;
  instances: () => InstanceRecord[];
  images: () => { id: string; name: string }[];
  volumes: () => number;
  providers: Map<string, Provider>;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly http: Histogram<'method' | 'route' | 'status'>;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'unik_instances',
      help: 'Instances by state',
      labelNames: ['state'],
      registers,
      collect() {
        const all = src.instances();
        for (const state of INSTANCE_STATES) this.set({ state }, all.filter((i) => i.status.state === state).length);
      },
    });
    new Gauge({
      name: 'unik_images',
      help: 'Images stored',
      registers,
      collect() {
        this.set(src.images().length);
      },
    });
    new Gauge({
      name: 'unik_volumes',
      help: 'Volumes stored',
      registers,
      collect() {
        this.set(src.volumes());
      },
    });
    new Gauge({
      name: 'unik_instance_memory_rss_bytes',
      help: 'Resident memory on the host of each running VM (its QEMU process: guest RAM touched plus QEMU itself)',
      labelNames: ['instance', 'image'],
      registers,
      collect() {
        this.reset(); // instances gone since the last scrape leave no series behind
        const images = new Map(src.images().map((i) => [i.id, i.name]));
        for (const inst of src.instances()) {
          if (inst.status.state !== 'running' && inst.status.state !== 'pending') continue;
          const pid = src.providers.get(inst.provider)?.vmPid?.(inst);
          const rss = pid ? rssBytes(pid) : undefined;
          if (rss !== undefined) this.set({ instance: inst.name, image: images.get(inst.imageId) ?? inst.imageId.slice(0, 12) }, rss);
        }
      },
    });
    new Gauge({
      name: 'unik_event_listeners',
      help: 'API clients streaming events now (GET /events, docker events)',
      registers,
      collect() {
        this.set(src.bus.listenerCount);
      },
    });

    const events = new Counter({ name: 'unik_events_total', help: 'Events, by object type and action (see GET /events)', labelNames: ['type', 'action'], registers });
    const boots = new Histogram({
      name: 'unik_instance_boot_duration_seconds',
      help: 'From a start being asked for to the app started in the guest; kind: restore (from the image\'s boot snapshot) or cold',
      labelNames: ['provider', 'kind'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    const builds = new Histogram({ name: 'unik_image_build_duration_seconds', help: 'Image builds that succeeded, by language', labelNames: ['language'], buckets: BUILD_BUCKETS, registers });
    this.http = new Histogram({
      name: 'unik_http_request_duration_seconds',
      help: 'API requests, by method, route template and status (streams count until they end)',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });

    const providerOf = (e: UnikEvent) => src.instances().find((i) => i.id === e.id)?.provider ?? 'unknown';
    src.bus.observe((e) => {
      events.inc({ type: e.type, action: e.action });
      const a = e.attributes;
      if (e.type === 'instance' && e.action === 'ready' && a.bootDuration !== undefined) boots.observe({ provider: providerOf(e), kind: a.boot ?? 'cold' }, Number(a.bootDuration));
      if (e.type === 'image' && e.action === 'build' && a.buildDuration !== undefined) builds.observe({ language: a.language ?? 'unknown' }, Number(a.buildDuration));
    });
  }

  /** One API request; `route` is the route's template (never the raw URL: bounded label values). */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.http.observe({ method, route, status: String(status) }, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A process's resident memory in bytes, or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}
