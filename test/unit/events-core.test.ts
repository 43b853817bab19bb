// Where the events come from and where they go, without booting a VM: the instance state
// machine over a fake provider emits create, start, ready, kill, die (with the exit code), stop
// and destroy in the order they happen, and the metrics count them; both dialects' GET /events
// stream them with since/until/filters; a client that goes frees its listener.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { EventBus, type UnikEvent } from '../../src/core/events.js';
import { ImageService } from '../../src/core/images.js';
import { InstanceService } from '../../src/core/instances.js';
import { Metrics } from '../../src/core/metrics.js';
import { NetworkService } from '../../src/core/networks.js';
import { VolumeService } from '../../src/core/volumes.js';
import { createCore, type Core } from '../../src/core/core.js';
import { buildApp } from '../../src/daemon/app.js';
import { unikPaths } from '../../src/model/paths.js';
import { Store } from '../../src/store/db.js';
import type { InstanceRecord } from '../../src/model/types.js';
import type { Observed, Provider, ProviderInfo } from '../../src/providers/types.js';
import { fakeImage } from '../fuzz/fixtures.js';

/** VMs that exist only as records here: the test says when one is ready or exits. */
class FakeProvider implements Provider {
  readonly name = 'qemu';
  readonly infrastructure = 'fake';
  readonly arches = ['amd64', 'arm64'] as const;
  readonly vms = new Map<string, Observed>();
  nextBoot: 'restore' | 'cold' = 'restore';
  constructor(private readonly dir: string) {}
  async info(): Promise<ProviderInfo> {
    return { name: this.name, infrastructure: this.infrastructure, available: true, reason: 'fake' };
  }
  async preflight(): Promise<void> {}
  async start(inst: InstanceRecord) {
    this.vms.set(inst.id, { alive: true, ready: false, exitCode: null });
    return { pid: process.pid, accel: 'tcg', boot: this.nextBoot };
  }
  async stop(inst: InstanceRecord, graceMs: number): Promise<void> {
    const vm = this.vms.get(inst.id);
    if (vm?.alive) this.vms.set(inst.id, { ...vm, alive: false, exitCode: graceMs > 0 ? 143 : null });
  }
  async signal(): Promise<void> {}
  async inspect(inst: InstanceRecord): Promise<Observed> {
    return this.vms.get(inst.id) ?? { alive: false, ready: false, exitCode: null };
  }
  vmPid(inst: InstanceRecord): number | undefined {
    return this.vms.get(inst.id)?.alive ? process.pid : undefined;
  }
  logFile(inst: InstanceRecord): string {
    return join(this.dir, `${inst.id}.log`);
  }
  async remove(): Promise<void> {}
}

describe('instances, images and volumes emit what happens; metrics count it', () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-events-core-'));
  const paths = unikPaths(home);
  let store: Store;
  let fake: FakeProvider;
  let bus: EventBus;
  let instances: InstanceService;
  let images: ImageService;
  let volumes: VolumeService;
  let metrics: Metrics;
  const seen: UnikEvent[] = [];
  const IMAGE = 'ee'.repeat(32);

  before(() => {
    for (const d of [paths.images, paths.instances, paths.volumes, paths.tmp]) mkdirSync(d, { recursive: true });
    store = new Store(paths.db);
    store.insertImage(fakeImage({ id: IMAGE, name: 'evimg' }));
    mkdirSync(join(paths.images, IMAGE));
    fake = new FakeProvider(home);
    const providers = new Map<string, Provider>([['qemu', fake]]);
    bus = new EventBus();
    images = new ImageService(store, paths, providers, bus);
    volumes = new VolumeService(store, paths, new Set(providers.keys()), bus);
    instances = new InstanceService(store, paths, providers, images, volumes, new NetworkService(store, home), bus);
    metrics = new Metrics({ bus, instances: () => store.listInstances(), images: () => store.listImages(), volumes: () => store.listVolumes().length, providers });
    bus.subscribe((e) => seen.push(e));
  });
  after(() => {
    instances.close();
    store.close();
    rmSync(home, { recursive: true, force: true });
  });

  const actions = (name: string) => seen.filter((e) => e.type === 'instance' && e.attributes.name === name).map((e) => e.action);
  const last = (name: string, action: string) => seen.filter((e) => e.attributes.name === name && e.action === action).at(-1);
  const series = async (name: string) =>
    (await metrics.text())
      .split('\n')
      .filter((l) => l.startsWith(name))
      .join('\n');

  test('run: create and start (the boot kind), then ready with the boot duration, when the guest says so', async () => {
    const inst = await instances.run({ image: 'evimg', name: 'web', network: 'user', labels: { tier: 'front' } });
    assert.deepEqual(actions('web'), ['create', 'start']);
    const start = last('web', 'start')!;
    assert.equal(start.attributes.boot, 'restore');
    assert.equal(start.attributes.image, 'evimg');
    assert.equal(start.attributes.tier, 'front', 'labels travel as attributes, as Docker does');
    assert.match(await series('unik_instances{state="pending"}'), / 1$/);

    fake.vms.set(inst.id, { alive: true, ready: true, exitCode: null, readyAt: new Date(Date.now() + 1000).toISOString() });
    await instances.refresh(inst.id);
    assert.deepEqual(actions('web'), ['create', 'start', 'ready']);
    const ready = last('web', 'ready')!;
    assert.equal(ready.attributes.boot, 'restore');
    const took = Number(ready.attributes.bootDuration);
    assert.ok(took >= 1 && took < 2, `boot took ${took} s by the guest's clock`);
    assert.match(await series('unik_instances{state="running"}'), / 1$/);
    assert.match(await series('unik_instance_boot_duration_seconds_count'), /^unik_instance_boot_duration_seconds_count\{provider="qemu",kind="restore"\} 1$/);
    assert.match(await series('unik_instance_boot_duration_seconds_bucket{le="2",provider="qemu",kind="restore"}'), / 1$/);
    const rss = /^unik_instance_memory_rss_bytes\{instance="web",image="evimg"\} (\d+)$/m.exec(await series('unik_instance_memory_rss_bytes'));
    assert.ok(rss && Number(rss[1]) > 1e6, 'the VM process\'s resident memory');
  });

  test('the app exits: die with its exit code; the RSS series goes', async () => {
    await instances.signal('web', 15);
    assert.equal(last('web', 'kill')!.attributes.signal, '15');
    fake.vms.set(instances.get('web').id, { alive: false, ready: true, exitCode: 3 });
    await instances.refresh(instances.get('web').id);
    assert.deepEqual(actions('web'), ['create', 'start', 'ready', 'kill', 'die']);
    assert.equal(last('web', 'die')!.attributes.exitCode, '3');
    assert.ok(Number(last('web', 'die')!.attributes.execDuration) >= 0);
    assert.equal(await series('unik_instance_memory_rss_bytes{'), '');
    assert.match(await series('unik_instances{state="stopped"}'), / 1$/);
  });

  test('start cold, stop (die 143, then stop), start, rm -f (die 137, destroy)', async () => {
    fake.nextBoot = 'cold';
    await instances.start('web');
    assert.equal(last('web', 'start')!.attributes.boot, 'cold');
    await instances.stop('web', 1000);
    assert.deepEqual(actions('web').slice(5), ['start', 'die', 'stop']);
    assert.equal(last('web', 'die')!.attributes.exitCode, '143');
    await instances.start('web');
    await instances.delete('web', true);
    assert.deepEqual(actions('web').slice(8), ['start', 'die', 'destroy']);
    assert.equal(last('web', 'die')!.attributes.exitCode, '137');
    // a boot that never got to ready is not in the histogram
    assert.match(await series('unik_instance_boot_duration_seconds_count'), /kind="restore"\} 1$/);
    assert.doesNotMatch(await series('unik_instance_boot_duration_seconds_count'), /kind="cold"/);
  });

  test('create (Docker create) then rm: create, destroy; nothing more', async () => {
    await instances.create({ image: 'evimg', name: 'made', network: 'user' });
    await instances.delete('made', false);
    assert.deepEqual(actions('made'), ['create', 'destroy']);
  });

  test('volumes and image deletion; every event counted by type and action', async () => {
    await volumes.create({ name: 'data', sizeMb: 8 });
    await volumes.delete('data', false, () => undefined);
    await images.delete('evimg', false, async () => {});
    assert.deepEqual(
      seen.filter((e) => e.type !== 'instance').map((e) => `${e.type} ${e.action} ${e.attributes.name}`),
      ['volume create data', 'volume destroy data', 'image delete evimg'],
    );
    const text = await metrics.text();
    assert.match(text, /^unik_events_total\{type="instance",action="die"\} 3$/m);
    assert.match(text, /^unik_events_total\{type="volume",action="create"\} 1$/m);
    assert.match(text, /^unik_images 0$/m);
    const times = seen.map((e) => e.timeNano);
    assert.deepEqual(times, [...times].sort((a, b) => (a < b ? -1 : 1)), 'in order');
    assert.equal(new Set(times).size, times.length, 'no two at the same ns');
  });
});

describe('GET /events and GET /metrics on the daemon app', () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-events-app-'));
  let core: Core;
  let app: FastifyInstance;
  let port = 0;
  const H = { host: '127.0.0.1' };
  const ID = 'ab'.repeat(32);

  before(async () => {
    core = await createCore({ home, watch: false });
    app = await buildApp({ core });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
    core.events.emit({ type: 'instance', action: 'create', id: ID, attributes: { name: 'web', image: 'go-http' } });
    core.events.emit({ type: 'image', action: 'build', id: 'cd'.repeat(32), attributes: { name: 'go-http', language: 'go', buildDuration: '12.500' } });
    core.events.emit({ type: 'instance', action: 'die', id: ID, attributes: { name: 'web', image: 'go-http', exitCode: '3' } });
    // the bus gives events of one millisecond times a nanosecond apart: an `until` of "now" read in
    // that same millisecond would end before the later ones
    await new Promise((r) => setTimeout(r, 5));
  });
  after(async () => {
    await app.close();
    core.close();
    rmSync(home, { recursive: true, force: true });
  });

  const lines = (body: string) => body.split('\n').filter(Boolean).map((l) => JSON.parse(l));

  test('Docker: since and until in the past answer the kept events in order, then end; filters as the CLI sends them', async () => {
    const r = await app.inject({ method: 'GET', url: `/v1.43/events?since=0&until=${(Date.now() / 1000).toFixed(3)}`, headers: H });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(lines(r.body).map((m) => `${m.Type} ${m.Action}`), ['container create', 'image build', 'container die']);
    const filters = encodeURIComponent(JSON.stringify({ type: { container: true }, event: { die: true } }));
    const f = await app.inject({ method: 'GET', url: `/v1.24/events?since=0&until=${(Date.now() / 1000).toFixed(3)}&filters=${filters}`, headers: H });
    const [die] = lines(f.body);
    assert.equal(lines(f.body).length, 1);
    assert.equal(die.Actor.Attributes.exitCode, '3');
    assert.equal(die.status, 'die');
    assert.equal(die.from, 'go-http');
  });

  test('unik: the same events in its own shape; its filters say instance', async () => {
    const r = await app.inject({ method: 'GET', url: `/events?since=0&until=${(Date.now() / 1000).toFixed(3)}&filters=${encodeURIComponent('{"instance":["we"]}')}`, headers: H });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.deepEqual(lines(r.body).map((e) => `${e.Type} ${e.Action} ${e.Name}`), ['instance create web', 'instance die web']);
  });

  test('bad since, until or filters: a 400 in each dialect, before anything streams', async () => {
    for (const url of ['/events?since=yesterday', '/events?since=20&until=10', '/events?filters=%7B%22container%22%3A%5B%22x%22%5D%7D', '/events?since=1&since=2']) {
      const r = await app.inject({ method: 'GET', url, headers: H });
      assert.equal(r.statusCode, 400, `${url}: ${r.body}`);
      assert.match(r.json().code, /^UNIK_ERR_/);
    }
    const d = await app.inject({ method: 'GET', url: '/v1.43/events?filters=%7B%22instance%22%3A%5B%22x%22%5D%7D', headers: H });
    assert.equal(d.statusCode, 400);
    assert.match(d.json().message, /invalid filter 'instance'/);
  });

  test('a cross-origin page gets neither the stream nor the metrics', async () => {
    for (const url of ['/events', '/v1.43/events', '/metrics']) {
      const r = await app.inject({ method: 'GET', url, headers: { ...H, origin: 'http://evil.test' } });
      assert.equal(r.statusCode, 403, url);
      assert.equal(r.json().code, 'UNIK_ERR_FORBIDDEN_ORIGIN');
    }
  });

  /** A raw streaming GET: the lines as they come, and a way to hang up. */
  function stream(path: string) {
    const got: string[] = [];
    let status = 0;
    let ended = false;
    let buf = '';
    const req = request({ host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}` } }, (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let at = buf.indexOf('\n'); at >= 0; at = buf.indexOf('\n')) {
          got.push(buf.slice(0, at));
          buf = buf.slice(at + 1);
        }
      });
      res.on('end', () => (ended = true));
    });
    req.on('error', () => undefined);
    req.end();
    return { got, status: () => status, ended: () => ended, close: () => req.destroy() };
  }
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 100 && !ok(); i++) await sleep(20);
    assert.ok(ok(), what);
  };

  test('live: a connected client gets new events; when it goes, its listener goes (Docker info says so too)', async () => {
    assert.equal(core.events.listenerCount, 0);
    const s = stream('/events');
    const d = stream('/v1.43/events?filters=%7B%22type%22%3A%5B%22volume%22%5D%7D');
    await until('both streams connected', () => s.status() === 200 && d.status() === 200 && core.events.listenerCount === 2);
    const info = await app.inject({ method: 'GET', url: '/v1.43/info', headers: H });
    assert.equal(info.json().NEventsListener, 2);
    assert.equal(s.got.length, 0, 'no since: nothing from before');
    core.events.emit({ type: 'instance', action: 'start', id: ID, attributes: { name: 'web', image: 'go-http', boot: 'cold' } });
    core.events.emit({ type: 'volume', action: 'create', id: 'ef'.repeat(32), attributes: { name: 'data', driver: 'unik' } });
    await until('the live events', () => s.got.length === 2 && d.got.length === 1);
    assert.equal(JSON.parse(s.got[0]!).Action, 'start');
    assert.equal(JSON.parse(d.got[0]!).Actor.ID, 'data');
    assert.match(await core.metrics.text(), /^unik_event_listeners 2$/m);
    s.close();
    d.close();
    await until('the listeners freed', () => core.events.listenerCount === 0);
    assert.match(await core.metrics.text(), /^unik_event_listeners 0$/m);
  });

  test('a client whose GET carries a body nobody reads is still noticed when it goes', async () => {
    const sock = connect(port, '127.0.0.1');
    let head = '';
    sock.on('data', (d: Buffer) => (head += d.toString('latin1')));
    sock.on('error', () => undefined);
    const body = Buffer.alloc(1 << 20, '[');
    sock.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body);
    await until('the head', () => head.startsWith('HTTP/1.1 200'));
    assert.equal(core.events.listenerCount, 1);
    sock.destroy();
    await until('the listener freed', () => core.events.listenerCount === 0);
  });

  test('an until in the future: live events until then, then the answer ends by itself', async () => {
    const s = stream(`/v1.43/events?since=0&until=${(Date.now() / 1000 + 0.5).toFixed(9)}&filters=%7B%22event%22%3A%5B%22destroy%22%5D%7D`);
    await until('connected', () => core.events.listenerCount === 1);
    core.events.emit({ type: 'instance', action: 'destroy', id: ID, attributes: { name: 'web', image: 'go-http' } });
    await until('ended at until', () => s.ended());
    assert.deepEqual(s.got.map((l) => JSON.parse(l).Action), ['destroy']);
    assert.equal(core.events.listenerCount, 0);
  });

  test('GET /metrics: the Prometheus text format, every line a comment or a sample; request latencies by route template', async () => {
    await app.inject({ method: 'GET', url: '/instances/nosuch', headers: H });
    await app.inject({ method: 'GET', url: '/v1.43/containers/nosuch/json', headers: H });
    const r = await app.inject({ method: 'GET', url: '/metrics', headers: H });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    for (const line of r.body.split('\n').filter(Boolean))
      assert.match(line, /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? -?[0-9.e+-]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (NaN|\+Inf|-Inf))$/, line);
    assert.match(r.body, /^unik_http_request_duration_seconds_count\{method="GET",route="\/instances\/:id",status="404"\} 1$/m);
    assert.match(r.body, /^unik_http_request_duration_seconds_count\{method="GET",route="\/vX\.Y\/containers\/:id\/json",status="404"\} 1$/m);
    assert.doesNotMatch(r.body, /nosuch/, 'never the raw URL');
    assert.match(r.body, /^unik_image_build_duration_seconds_count\{language="go"\} 1$/m);
    assert.match(r.body, /^process_resident_memory_bytes \d+/m, "the daemon's own process metrics");
  });
});
