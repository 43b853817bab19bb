// The list routes read what every row looks up once per answer (image names, networks,
// volumes, instance counts), and only live records are observed: their answers must be the
// very shapes the per-row lookups gave. In process; records put straight into the store,
// nothing boots.
process.env.UNIK_DEFAULT_NETWORK = 'user';
process.env.UNIK_BRIDGED = 'off';

import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { fakeImage } from '../fuzz/fixtures.js';
import { buildApp } from '../../src/daemon/app.js';
import { createCore, type Core } from '../../src/core/core.js';
import { containerSummary, imageSummary } from '../../src/daemon/docker/serialize.js';
import { unikPaths } from '../../src/model/paths.js';
import type { ImageRecord, InstanceRecord, InstanceStatus } from '../../src/model/types.js';
import { Store } from '../../src/store/db.js';

const home = mkdtempSync(join(tmpdir(), 'unik-listings-'));
let core: Core;
let app: FastifyInstance;

const id = (c: string) => c.repeat(64);
const alpha: ImageRecord = fakeImage({ id: id('a'), name: 'alpha' });
const beta: ImageRecord = { ...fakeImage({ id: id('b'), name: 'beta', mountPoints: ['/data'] }), created: '2024-01-02T00:00:00.000Z' };
beta.manifest.argv = ['/srv', 'x y'];
const long = '2024-01-01T00:00:00.000Z'; // long ago: "Exited (3) N hours ago" does not tick during the test

function inst(c: string, n: number, image: ImageRecord, status: Partial<InstanceStatus>, extra: Partial<InstanceRecord['spec']> = {}): InstanceRecord {
  return {
    id: id(c),
    name: `i${n}`,
    imageId: image.id,
    provider: 'qemu',
    created: `2024-02-0${n}T00:00:00.000Z`,
    spec: { env: { N: String(n) }, memoryMb: 64, ports: [{ hostIp: '127.0.0.1', hostPort: 20000 + n, guestPort: 8080, protocol: 'tcp' }], args: [`--n=${n}`], autoRemove: false, labels: { n: String(n) }, ...extra },
    status: { state: 'stopped', pid: null, exitCode: null, error: '', startedAt: long, finishedAt: long, accel: 'tcg', ...status },
  };
}

const net = { id: id('e'), name: 'testnet', driver: 'bridge' as const, subnet: '10.89.77.0/24', gateway: '10.89.77.1', bridge: 'unikbreeeeeeee', created: long, labels: {} };
const records = [
  inst('1', 1, alpha, { state: 'created', startedAt: null, finishedAt: null }),
  inst('2', 2, beta, { state: 'stopped', exitCode: 3 }, { network: { networkId: net.id, ip: '10.89.77.5', mac: '02:00:00:00:00:05' } }),
  inst('3', 3, alpha, { state: 'error', error: 'boom' }),
  // recorded running, but it has no VM: the listing must show what the watcher would see
  inst('4', 4, alpha, { state: 'running', pid: 999999, finishedAt: null }),
  // a start under way (phase): left as recorded, and listed without all=1
  inst('5', 5, beta, { state: 'pending', phase: 'starting', finishedAt: null }),
];

function withStore<T>(fn: (s: Store) => T): T {
  const store = new Store(unikPaths(home).db);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

before(async () => {
  core = await createCore({ home, watch: false });
  withStore((s) => {
    s.insertImage(alpha);
    s.insertImage(beta);
    s.insertNetwork(net);
    for (const r of records) s.insertInstance(r);
    s.insertVolume({ id: id('f'), name: 'vol', provider: 'qemu', type: 'ext4', sizeBytes: 1 << 20, created: long, attachment: { instanceId: id('2'), mountPoint: '/data' } });
  });
  app = await buildApp({ core });
  await app.ready();
});
after(async () => {
  await app.close();
  core.close();
  rmSync(home, { recursive: true, force: true });
});

const get = async (url: string) => {
  const r = await app.inject({ method: 'GET', url, headers: { host: '127.0.0.1' } });
  assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
  return r.json() as Record<string, unknown>[];
};

test('the store picks the live instances and counts instances per image itself', () => {
  withStore((s) => {
    assert.deepEqual(s.liveInstanceIds(), [id('4'), id('5')], 'pending and running, in created order');
    assert.deepEqual([...s.instanceCountsByImage()].sort(), [
      [alpha.id, 3],
      [beta.id, 2],
    ]);
  });
});

test('the live instances are found through the index on their state, not by reading every record', () => {
  const db = new Database(unikPaths(home).db, { readonly: true });
  try {
    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT id FROM instances WHERE json_extract(status, '$.state') IN ('pending', 'running') ORDER BY created`).all() as { detail: string }[];
    assert.ok(plan.some((p) => /USING INDEX instances_state/.test(p.detail)), JSON.stringify(plan));
  } finally {
    db.close();
  }
});

test('GET /instances: each row as GET /instances/:id gives it; a running record without a VM is shown as observed', async () => {
  const list = await get('/instances');
  assert.deepEqual(list.map((i) => i.Id), records.map((r) => r.id));
  for (const row of list) assert.deepEqual(row, (await app.inject({ method: 'GET', url: `/instances/${row.Id as string}`, headers: { host: '127.0.0.1' } })).json());
  const byName = Object.fromEntries(list.map((i) => [i.Name, i]));
  assert.equal(byName.i4!.State, 'error');
  assert.equal(byName.i2!.ImageName, 'beta');
  assert.equal(byName.i2!.Network, 'testnet');
  assert.equal(byName.i1!.Network, 'user');
  assert.equal(byName.i5!.State, 'pending');
});

test('GET /containers/json: the shapes the per-row lookups give, newest first; without all only the live ones', async () => {
  // "Less than a second ago" may become "1 second ago" between the two
  const calm = (rows: unknown[]) => JSON.parse(JSON.stringify(rows).replace(/(Less than a second|\d+ seconds?)/g, 'a moment')) as unknown;
  const all = await get('/v1.43/containers/json?all=1');
  const perRow = core.instances
    .list()
    .sort((a, b) => b.created.localeCompare(a.created))
    .map((i) => containerSummary(core, i));
  assert.deepEqual(calm(all), calm(perRow));
  assert.deepEqual(all.map((c) => c.Names), [['/i5'], ['/i4'], ['/i3'], ['/i2'], ['/i1']]);
  const i2 = all.find((c) => c.Id === id('2'))!;
  assert.equal(i2.Image, 'beta');
  assert.equal(i2.Command, '/srv "x y" --n=2');
  assert.match(i2.Status as string, /^Exited \(3\) \d+ hours ago$/);
  assert.deepEqual((i2.Mounts as { Name: string; Destination: string }[]).map((m) => [m.Name, m.Destination]), [['vol', '/data']]);
  assert.deepEqual(Object.keys((i2.NetworkSettings as { Networks: object }).Networks), ['testnet']);
  assert.equal(all.find((c) => c.Id === id('4'))!.State, 'dead');
  assert.deepEqual((await get('/v1.43/containers/json')).map((c) => c.Id), [id('5')]);
});

test('GET /images/json: Containers counted once for the list, as the per-image count gave it', async () => {
  const list = await get('/v1.43/images/json');
  assert.deepEqual(list, core.images.list().map((img) => imageSummary(core, img)));
  assert.deepEqual(list.map((i) => [i.RepoTags, i.Containers]), [
    [['alpha:latest'], 3],
    [['beta:latest'], 2],
  ]);
});
