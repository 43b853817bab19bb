// Docker's network routes and the network fields of containers, in process. No bridge is ever
// made here (that would change the host's network): the default network is user mode, bridged
// networks are turned off (a create that gets past its checks stops at "need bridges"), and the
// one bridged network below is a record put straight into the store, never brought up, and
// never removed through the daemon (removal deletes a bridge and rewrites nftables rules).
process.env.UNIK_DEFAULT_NETWORK = 'user';
process.env.UNIK_BRIDGED = 'off';

import { fakeImage } from '../fuzz/fixtures.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/daemon/app.js';
import { createCore, type Core } from '../../src/core/core.js';
import { networkShape } from '../../src/daemon/docker/serialize.js';
import { toNetwork } from '../../src/daemon/docker/translate.js';
import { unikPaths } from '../../src/model/paths.js';
import type { InstanceRecord, NetworkRecord } from '../../src/model/types.js';
import { Store } from '../../src/store/db.js';

const home = mkdtempSync(join(tmpdir(), 'unik-docker-net-'));
const IMAGE_NAME = 'netimg';
let core: Core;
let app: FastifyInstance;
before(async () => {
  core = await createCore({ home, watch: false });
  // an image record only (its files are missing: nothing here boots)
  withStore((s) => s.insertImage(image()));
  app = await buildApp({ core });
  await app.ready();
});
after(async () => {
  await app.close();
  core.close();
  rmSync(home, { recursive: true, force: true });
});

/** A second handle on the daemon's store, for records the API cannot make here. */
function withStore(fn: (s: Store) => void): void {
  const store = new Store(unikPaths(home).db);
  try {
    fn(store);
  } finally {
    store.close();
  }
}

const image = () => fakeImage({ id: 'feedface'.repeat(8), name: IMAGE_NAME });

const H = { host: '127.0.0.1' };
const get = (url: string) => app.inject({ method: 'GET', url, headers: H });
const post = (url: string, payload?: unknown) => app.inject({ method: 'POST', url, headers: H, ...(payload === undefined ? {} : { payload: payload as object }) });

/** A bridged network as a record only: no bridge, no rules, no DNS behind it. */
function seedNetwork(): NetworkRecord {
  const net: NetworkRecord = {
    id: 'abcdef01'.repeat(8),
    name: 'testnet',
    driver: 'bridge',
    subnet: '10.89.77.0/24',
    gateway: '10.89.77.1',
    bridge: 'unikbrabcdef01',
    created: '2024-02-03T04:05:06.000Z',
    labels: { team: 'a' },
  };
  withStore((s) => s.insertNetwork(net));
  return net;
}

test('GET /networks: an empty store lists none, versioned and unversioned', async () => {
  for (const url of ['/networks', '/v1.43/networks', '/v1.43/networks?filters=%7B%22type%22%3A%5B%22custom%22%5D%7D']) {
    const r = await get(url);
    assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
    assert.deepEqual(r.json(), []);
  }
});

test('GET /networks: unknown filter keys and bad values are 400s, as in Docker', async () => {
  const bad = async (filters: unknown, re: RegExp) => {
    const r = await get(`/v1.43/networks?filters=${encodeURIComponent(JSON.stringify(filters))}`);
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().message, re);
  };
  await bad({ foo: ['x'] }, /invalid filter 'foo'/);
  await bad({ type: ['xyz'] }, /invalid filter 'type=xyz'/);
  await bad({ dangling: ['maybe'] }, /invalid value for filter 'dangling'/);
  const r = await get('/v1.43/networks?filters=nonsense');
  assert.equal(r.statusCode, 400);
});

test('GET /networks/{id}: an unknown network is Docker\'s 404 (docker inspect NAME goes on to the next kind)', async () => {
  for (const url of ['/v1.43/networks/nosuch', '/networks/nosuch']) {
    const r = await get(url);
    assert.equal(r.statusCode, 404, r.body);
    assert.deepEqual(r.json(), { message: 'network nosuch not found' });
  }
  const del = await app.inject({ method: 'DELETE', url: '/v1.43/networks/nosuch', headers: H });
  assert.equal(del.statusCode, 404);
  assert.equal(del.json().message, 'network nosuch not found');
});

test('POST /networks/create: what unik cannot make is a 400 with the reason, before any bridge', async () => {
  const cases: [unknown, RegExp][] = [
    [{ Name: 'n1', Driver: 'overlay' }, /driver "overlay" is not supported/],
    [{ Name: 'n1', EnableIPv6: true }, /IPv6/],
    [{ Name: 'n1', Internal: true }, /internal networks are not supported yet/],
    [{ Name: 'n1', IPAM: { Driver: 'default', Config: [{ Subnet: 'fd00::/64' }] } }, /IPv6/],
    [{ Name: 'n1', IPAM: { Config: [{ Subnet: '10.1.0.0/24' }, { Subnet: '10.2.0.0/24' }] } }, /one IPv4 subnet/],
    [{ Name: 'n1', Options: { 'com.docker.network.driver.mtu': '1400' } }, /options are not supported/],
    [{ Name: 'host' }, /reserved/],
    [{ Name: 'user' }, /reserved/],
    [{ Name: 'bad name!' }, /invalid network name/],
    [{ Driver: 'bridge' }, /needs a name/],
  ];
  for (const [body, re] of cases) {
    const r = await post('/v1.43/networks/create', body);
    assert.equal(r.statusCode, 400, `${JSON.stringify(body)}: ${r.body}`);
    assert.match(r.json().message, re, JSON.stringify(body));
  }
  // a good request reaches the bridge step, which is turned off here
  const r = await post('/v1.43/networks/create', { Name: 'n1', Driver: 'bridge', CheckDuplicate: true, IPAM: { Driver: 'default', Options: {}, Config: [] }, Labels: {} });
  assert.equal(r.statusCode, 503, r.body);
  assert.match(r.json().message, /bridged networks are turned off/);
  assert.deepEqual(core.networks.list(), []);
});

test('POST /networks/prune: nothing to prune', async () => {
  const r = await post('/v1.43/networks/prune');
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { NetworksDeleted: [] });
  assert.equal((await post('/v1.43/networks/prune?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D')).statusCode, 400);
});

test('toNetwork: Docker\'s NetworkMode and EndpointsConfig → RunRequest.network', () => {
  assert.equal(toNetwork({}), undefined);
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'default' } }), undefined);
  assert.equal(toNetwork({ HostConfig: { NetworkMode: '' } }), undefined);
  // Docker's own default network's name means the daemon's default
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'bridge' } }), undefined);
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'mynet' } }), 'mynet');
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'user' } }), 'user');
  // host and none pass on: core refuses them with its reason
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'host' } }), 'host');
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'none' } }), 'none');
  // the endpoint's key when the mode is the default
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'default' }, NetworkingConfig: { EndpointsConfig: { mynet: { MacAddress: '' } } } }), 'mynet');
  assert.equal(toNetwork({ NetworkingConfig: { EndpointsConfig: { mynet: null } } }), 'mynet');
  assert.equal(toNetwork({ NetworkingConfig: { EndpointsConfig: { default: {} } } }), undefined);
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'mynet' }, NetworkingConfig: { EndpointsConfig: { mynet: { IPAMConfig: null } } } }), 'mynet');
  assert.equal(toNetwork({ HostConfig: { NetworkMode: 'mynet' }, NetworkingConfig: null }), 'mynet');
  // what a VM cannot do
  assert.throws(() => toNetwork({ HostConfig: { NetworkMode: 'container:abc' } }), /cannot share/);
  assert.throws(() => toNetwork({ NetworkingConfig: { EndpointsConfig: { a: {}, b: {} } } }), /one network interface/);
  assert.throws(() => toNetwork({ HostConfig: { NetworkMode: 'a' }, NetworkingConfig: { EndpointsConfig: { b: {} } } }), /one network interface/);
  assert.throws(() => toNetwork({ HostConfig: { NetworkMode: 'a' }, NetworkingConfig: { EndpointsConfig: { a: { IPAMConfig: { IPv4Address: '10.0.0.5' } } } } }), /static addresses are not supported yet/);
  assert.throws(() => toNetwork({ HostConfig: { NetworkMode: 'a' }, NetworkingConfig: { EndpointsConfig: { a: { MacAddress: '02:00:00:00:00:01' } } } }), /MAC/);
});

test('containers: a user-mode instance reports the network "user" (inspect, ps), host/none are refused', async () => {
  const made = await post('/v1.43/containers/create?name=um1', { Image: IMAGE_NAME, HostConfig: { NetworkMode: 'default' } });
  assert.equal(made.statusCode, 201, made.body);
  const c = (await get('/v1.43/containers/um1/json')).json();
  assert.equal(c.HostConfig.NetworkMode, 'user');
  assert.deepEqual(Object.keys(c.NetworkSettings.Networks), ['user']);
  const ep = c.NetworkSettings.Networks.user;
  assert.deepEqual(ep, {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    NetworkID: '',
    EndpointID: '',
    Gateway: '10.0.2.2',
    IPAddress: '',
    IPPrefixLen: 24,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    MacAddress: '',
    DriverOpts: null,
  });
  assert.equal(c.NetworkSettings.IPAddress, '', 'no address while not running');
  assert.equal(c.NetworkSettings.Gateway, '10.0.2.2');
  const ps = (await get('/containers/json?all=1')).json() as { Names: string[]; HostConfig: { NetworkMode: string }; NetworkSettings: { Networks: Record<string, unknown> } }[];
  const row = ps.find((x) => x.Names[0] === '/um1')!;
  assert.equal(row.HostConfig.NetworkMode, 'user');
  assert.deepEqual(Object.keys(row.NetworkSettings.Networks), ['user']);

  const explicit = await post('/v1.43/containers/create?name=um2', { Image: IMAGE_NAME, HostConfig: { NetworkMode: 'user' } });
  assert.equal(explicit.statusCode, 201, explicit.body);
  for (const mode of ['host', 'none']) {
    const r = await post(`/v1.43/containers/create?name=bad-${mode}`, { Image: IMAGE_NAME, HostConfig: { NetworkMode: mode } });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().message, /not possible for a unikernel/);
  }
  const stat = await post('/v1.43/containers/create?name=bad-ip', { Image: IMAGE_NAME, HostConfig: { NetworkMode: 'x' }, NetworkingConfig: { EndpointsConfig: { x: { IPAMConfig: { IPv4Address: '10.1.1.1' } } } } });
  assert.equal(stat.statusCode, 400);
  assert.match(stat.json().message, /static addresses are not supported yet/);
  // not a 404: the docker CLI would take that for a missing image and go to pull it
  const missing = await post('/v1.43/containers/create?name=bad-net', { Image: IMAGE_NAME, HostConfig: { NetworkMode: 'nosuchnet' } });
  assert.equal(missing.statusCode, 400, missing.body);
  assert.match(missing.json().message, /^network nosuchnet not found/);
});

test('a bridged network (a record only): list, filters, inspect, connect, disconnect, in-use rm', async () => {
  const net = seedNetwork();
  const list = (await get('/v1.43/networks')).json();
  assert.equal(list.length, 1);
  assert.deepEqual(list[0], {
    Name: 'testnet',
    Id: net.id,
    Created: net.created,
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: '10.89.77.0/24', Gateway: '10.89.77.1' }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: { 'com.docker.network.bridge.name': 'unikbrabcdef01' },
    Labels: { team: 'a' },
  });
  const names = async (filters: unknown) => ((await get(`/networks?filters=${encodeURIComponent(JSON.stringify(filters))}`)).json() as { Name: string }[]).map((n) => n.Name);
  assert.deepEqual(await names({ name: ['test'] }), ['testnet'], 'name matches part of it');
  assert.deepEqual(await names({ name: { nope: true } }), []);
  assert.deepEqual(await names({ id: [net.id.slice(0, 6)] }), ['testnet']);
  assert.deepEqual(await names({ driver: ['bridge'] }), ['testnet']);
  assert.deepEqual(await names({ driver: ['macvlan'] }), []);
  assert.deepEqual(await names({ label: ['team'] }), ['testnet']);
  assert.deepEqual(await names({ label: ['team=a'] }), ['testnet']);
  assert.deepEqual(await names({ label: ['team=b'] }), []);
  assert.deepEqual(await names({ type: ['custom'] }), ['testnet']);
  assert.deepEqual(await names({ type: ['builtin'] }), []);
  assert.deepEqual(await names({ dangling: ['true'] }), ['testnet']);
  assert.deepEqual(await names({ dangling: ['false'] }), []);
  assert.deepEqual(await names({ scope: ['local'] }), ['testnet']);
  assert.deepEqual(await names({ scope: ['swarm'] }), []);
  for (const ref of ['testnet', net.id, net.id.slice(0, 12)]) assert.equal((await get(`/v1.43/networks/${ref}`)).json().Id, net.id, ref);

  // connect a stopped (created) instance: it moves from user mode onto the network
  assert.equal((await post('/v1.43/networks/testnet/connect', { Container: 'um1', EndpointConfig: { IPAMConfig: { IPv4Address: '10.89.77.9' } } })).statusCode, 400);
  assert.equal((await post('/v1.43/networks/testnet/connect', { Container: 'nosuch' })).statusCode, 404);
  const con = await post('/v1.43/networks/testnet/connect', { Container: 'um1', EndpointConfig: { Aliases: ['um1'] } });
  assert.equal(con.statusCode, 200, con.body);
  assert.equal(con.body, '');
  const inst = core.instances.get('um1');
  assert.equal(inst.spec.network?.networkId, net.id);
  const c = (await get('/v1.43/containers/um1/json')).json();
  assert.equal(c.HostConfig.NetworkMode, 'testnet');
  assert.deepEqual(c.NetworkSettings.Networks.testnet, {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    NetworkID: net.id,
    EndpointID: inst.id,
    Gateway: '10.89.77.1',
    IPAddress: '',
    IPPrefixLen: 24,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    MacAddress: inst.spec.network!.mac,
    DriverOpts: null,
  });
  assert.equal(c.NetworkSettings.MacAddress, inst.spec.network!.mac);
  assert.equal(c.NetworkSettings.Gateway, '10.89.77.1');
  const row = ((await get('/containers/json?all=1')).json() as { Names: string[]; NetworkSettings: { Networks: Record<string, unknown> } }[]).find((x) => x.Names[0] === '/um1')!;
  assert.deepEqual(Object.keys(row.NetworkSettings.Networks), ['testnet']);
  // a stopped endpoint is no "container" of the network, but the network is in use
  assert.deepEqual((await get('/v1.43/networks/testnet')).json().Containers, {});
  assert.deepEqual(await names({ dangling: ['true'] }), []);
  assert.deepEqual(await names({ dangling: ['1'] }), []);
  assert.deepEqual(await names({ dangling: ['false'] }), ['testnet']);

  // in use: Docker's 403, naming the instance; prune leaves it
  const rm = await app.inject({ method: 'DELETE', url: '/v1.43/networks/testnet', headers: H });
  assert.equal(rm.statusCode, 403, rm.body);
  assert.match(rm.json().message, /has active endpoints: um1/);
  assert.deepEqual((await post('/v1.43/networks/prune')).json(), { NetworksDeleted: [] });
  assert.equal(core.networks.list().length, 1);

  // disconnect: back to user mode; a second time it is not connected
  assert.equal((await post('/v1.43/networks/testnet/disconnect', { Container: 'um2' })).statusCode, 400);
  const dis = await post('/networks/testnet/disconnect', { Container: 'um1', Force: false });
  assert.equal(dis.statusCode, 200, dis.body);
  assert.equal(core.instances.get('um1').spec.network, undefined);
  const again = await post('/networks/testnet/disconnect', { Container: 'um1' });
  assert.equal(again.statusCode, 400);
  assert.match(again.json().message, /container um1 is not connected to network testnet/);
  assert.equal((await get('/v1.43/containers/um1/json')).json().HostConfig.NetworkMode, 'user');
  // (no rm or prune now: it would delete a bridge and rewrite the host's nftables rules)
});

test('networkShape: running instances on it are its Containers, with address/prefix', () => {
  const net: NetworkRecord = { id: 'n'.repeat(64), name: 'x', driver: 'bridge', subnet: '10.89.5.0/24', gateway: '10.89.5.1', bridge: 'unikbrx', created: '2024-01-01T00:00:00.000Z', labels: {} };
  const inst = (id: string, state: InstanceRecord['status']['state'], networkId = net.id): InstanceRecord => ({
    id,
    name: `i-${id.slice(0, 3)}`,
    imageId: 'img',
    provider: 'qemu',
    created: '2024-01-01T00:00:00.000Z',
    spec: { env: {}, memoryMb: 64, ports: [], network: { networkId, ip: `10.89.5.${id.length}`, mac: '02:00:00:00:00:01' } },
    status: { state, pid: 1, exitCode: null, error: '', startedAt: null, finishedAt: null, accel: '' },
  });
  const shape = networkShape(net, [inst('aaa', 'running'), inst('bbbb', 'stopped'), inst('ccccc', 'pending'), inst('dddddd', 'running', 'other')]);
  assert.deepEqual(shape.Containers, {
    aaa: { Name: 'i-aaa', EndpointID: 'aaa', MacAddress: '02:00:00:00:00:01', IPv4Address: '10.89.5.3/24', IPv6Address: '' },
    ccccc: { Name: 'i-ccc', EndpointID: 'ccccc', MacAddress: '02:00:00:00:00:01', IPv4Address: '10.89.5.5/24', IPv6Address: '' },
  });
});
