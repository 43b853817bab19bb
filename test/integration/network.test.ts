// Bridged networks, for real: Linux bridges, taps, nftables rules and DNS by name, all inside a
// network namespace this test makes (and removes): no bridge, address or packet of it is ever
// on the host's own network. The daemon runs in there; the test reaches in through the CLI under
// `ip netns exec`, and through a relay (netns.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, waitFor } from './harness.js';
import { NetNs, NsDaemon } from './netns.js';

const ns = new NetNs();
const d = new NsDaemon(ns);
let counterIp = '';

before(async () => {
  await ns.create();
  await d.start();
  for (const [name, dir] of [['redis', 'test/fixtures/elf-redis'], ['counter', 'examples/counter']] as const) {
    const r = await d.cli(['push', name, join(ROOT, dir)]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  }
});

after(async () => {
  if (process.exitCode) console.error(d.log());
  await d.destroy();
  await ns.destroy();
});

const bridges = () => ns.links().filter((l) => l.linkinfo?.info_kind === 'bridge');
const taps = () => ns.links().filter((l) => l.ifname.startsWith('ukt'));
const addrsIn = (prefix: string) => ns.links().flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.local.startsWith(prefix)).map((a) => `${l.ifname}:${a.local}/${a.prefixlen}`));
const inst = async (name: string) => (await d.api('GET', `/instances/${name}`)).json;

function docker(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns.name, 'timeout', '-s', 'KILL', '120', 'docker', '-H', `tcp://127.0.0.1:${d.port}`, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('network create makes a bridge with its gateway and NAT; a subnet clash and a taken name are clear errors that make nothing', async () => {
  const made = await d.cli(['network', 'create', 'shop', '--subnet', '10.89.7.0/24', '--label', 'team=web']);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /shop\s+[0-9a-f]{12}\s+10\.89\.7\.0\/24\s+10\.89\.7\.1\s+unikbr[0-9a-f]{8}/);
  assert.deepEqual(addrsIn('10.89.7.'), [`${bridges()[0]!.ifname}:10.89.7.1/24`]);
  const tables = ns.nftTables();
  assert.deepEqual(tables.map((t) => t.split(' ')[1]).sort(), ['bridge', 'ip'], tables.join('\n'));
  const rules = ns.sh(['nft', 'list', 'table', 'ip', tables[0]!.split(' ').pop()!]);
  assert.match(rules, /ip saddr 10\.89\.7\.0\/24 oifname != "unikbr[0-9a-f]{8}" masquerade/);
  // no IPv6 on the bridge: a guest's router advertisement cannot give the host a route
  assert.equal(ns.sh(['cat', `/proc/sys/net/ipv6/conf/${bridges()[0]!.ifname}/disable_ipv6`]).trim(), '1');

  const ls = await d.cli(['network', 'ls', '--json']);
  const shop = JSON.parse(ls.stdout).find((n: { Name: string }) => n.Name === 'shop');
  assert.deepEqual(shop.IPAM.Config, [{ Subnet: '10.89.7.0/24', Gateway: '10.89.7.1' }]);
  assert.equal(shop.Labels.team, 'web');

  const clash = await d.cli(['network', 'create', 'shop2', '--subnet', '10.89.7.128/25']);
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /overlaps network shop/);
  // a subnet the host already routes (here: a veth pair inside the namespace)
  ns.sh(['ip', 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1']);
  ns.sh(['ip', 'addr', 'add', '10.77.0.1/16', 'dev', 'lan0']);
  ns.sh(['ip', 'link', 'set', 'lan0', 'up']);
  const routed = await d.cli(['network', 'create', 'shop3', '--subnet', '10.77.3.0/24']);
  assert.notEqual(routed.code, 0);
  assert.match(routed.stderr, /overlaps 10\.77\.0\.0\/16, which this host already routes through lan0/);
  const again = await d.cli(['network', 'create', 'shop']);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /already exists/);
  const bad = await d.cli(['network', 'create', 'odd', '--subnet', '10.89.8.5/24']);
  assert.match(bad.stderr, /not a network address.*10\.89\.8\.0\/24/s);
  // nothing was made by the refusals
  assert.equal(bridges().length, 1);
  assert.equal(JSON.parse((await d.cli(['network', 'ls', '--json'])).stdout).length, 1);
});

test('two instances on one network: the counter finds redis by name, from its own address and through a published port', async () => {
  const redis = await d.cli(['run', 'redis', '--name', 'redis', '--network', 'shop']);
  assert.equal(redis.code, 0, redis.stderr + redis.stdout);
  const run = await d.cli(['run', 'counter', '--name', 'counter', '--network', 'shop', '-p', '127.0.0.1:18080:8080']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /address 10\.89\.7\.\d+ on network shop/);
  const [r, c] = [await inst('redis'), await inst('counter')];
  assert.equal(c.Network, 'shop');
  assert.match(r.IpAddress, /^10\.89\.7\.\d+$/);
  assert.match(c.IpAddress, /^10\.89\.7\.\d+$/);
  assert.notEqual(r.IpAddress, c.IpAddress);
  counterIp = c.IpAddress;
  // from the daemon's side, to the instance's own address; the counter reaches "redis:6379" by DNS
  assert.equal(await ns.httpUntil(`http://${counterIp}:8080/`), 'hits: 1\n');
  // the published port, relayed by the instance's supervisor
  assert.equal(await ns.httpUntil('http://127.0.0.1:18080/'), 'hits: 2\n');
  // each VM's tap is on the bridge, and may send only from its own MAC and address
  const t = taps();
  assert.equal(t.length, 2);
  const guard = ns.sh(['nft', 'list', 'chain', 'bridge', ns.nftTables()[0]!.split(' ').pop()!, 'guard']);
  for (const l of t) assert.match(guard, new RegExp(`iifname "${l.ifname}" arp saddr ip != 10\\.89\\.7\\.\\d+ drop`));
  for (const l of ns.links().filter((x) => x.ifname.startsWith('ukt'))) assert.match(ns.sh(['ip', '-o', 'link', 'show', l.ifname]), /master unikbr/);
});

test('stop and start keep the address; a network in use cannot be removed', async () => {
  assert.equal((await d.cli(['stop', 'counter'])).code, 0);
  assert.equal(taps().length, 1, 'the stopped VM took its tap with it');
  assert.equal((await d.cli(['start', 'counter'])).code, 0);
  await waitFor('counter running', async () => ((await inst('counter')).State === 'running' ? true : undefined));
  assert.equal((await inst('counter')).IpAddress, counterIp);
  assert.equal(await ns.httpUntil(`http://${counterIp}:8080/`), 'hits: 3\n');

  const rm = await d.cli(['network', 'rm', 'shop']);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /shop.*(redis, counter|counter, redis)/);
  assert.equal(bridges().length, 1);
});

test('the 2016 API run request, with no ports and no network, gives an instance whose IpAddress answers (default network, made on first use)', async () => {
  const res = await d.api('POST', '/instances/run', { ImageName: 'counter', InstanceName: 'legacy' });
  assert.equal(res.status, 201, res.text);
  const ip = res.json.IpAddress;
  assert.match(ip, /^10\.89\.\d+\.\d+$/);
  assert.equal(await ns.httpUntil(`http://${ip}:8080/ping_test`), 'pong');
  const nets = JSON.parse((await d.cli(['network', 'ls', '--json'])).stdout) as { Name: string }[];
  assert.deepEqual(nets.map((n) => n.Name).sort(), ['bridge', 'shop']);
  // another network: redis is not found by name from here (names are per network)
  const miss = await ns.fetch(`http://${ip}:8080/`);
  assert.equal(miss.status, 503);
  assert.match(await miss.text(), /redis/);
  // nor reached by address: nothing is forwarded between two networks
  const redisIp = (await inst('redis')).IpAddress;
  const cross = await d.api('POST', '/instances/run', { ImageName: 'counter', InstanceName: 'cross', Env: { REDIS_ADDR: `${redisIp}:6379` } });
  assert.equal(cross.status, 201, cross.text);
  await ns.httpUntil(`http://${cross.json.IpAddress}:8080/ping_test`);
  const blocked = await ns.fetch(`http://${cross.json.IpAddress}:8080/`);
  assert.equal(blocked.status, 503, 'an instance on another network reached redis');
  assert.equal((await d.cli(['rm', '-f', 'legacy', 'cross'])).code, 0);
});

test('docker network ls/create/inspect/connect/disconnect/rm and docker run --network, with the real address', async () => {
  const ls = await docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^shop bridge$/m);
  const made = await docker(['network', 'create', '--subnet', '10.89.9.0/24', 'dnet']);
  assert.equal(made.code, 0, made.stderr);
  const runD = await docker(['run', '-d', '--network', 'dnet', '--name', 'dc', 'counter']);
  assert.equal(runD.code, 0, runD.stderr);
  const ip = await waitFor('dc address', async () => {
    const r = await docker(['inspect', '-f', '{{.NetworkSettings.Networks.dnet.IPAddress}}', 'dc']);
    return /^10\.89\.9\.\d+$/.test(r.stdout.trim()) ? r.stdout.trim() : undefined;
  });
  assert.equal(await ns.httpUntil(`http://${ip}:8080/ping_test`), 'pong');
  // made by create, then started: its tap is held to its own addresses too
  const dcId = (await docker(['inspect', '-f', '{{.Id}}', 'dc'])).stdout.trim();
  assert.match(ns.sh(['nft', 'list', 'chain', 'bridge', ns.nftTables()[0]!.split(' ').pop()!, 'guard']), new RegExp(`iifname "ukt${dcId.slice(0, 12)}" ip saddr != ${ip.replace(/\./g, '\\.')} drop`));
  const insp = JSON.parse((await docker(['network', 'inspect', 'shop'])).stdout)[0];
  assert.deepEqual(Object.values(insp.Containers as Record<string, { Name: string }>).map((c) => c.Name).sort(), ['counter', 'redis']);

  // a running container keeps its one interface; stopped, it moves
  const busy = await docker(['network', 'disconnect', 'dnet', 'dc']);
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, /stop it first/);
  assert.equal((await docker(['stop', 'dc'])).code, 0);
  assert.equal((await docker(['network', 'disconnect', 'dnet', 'dc'])).code, 0);
  assert.equal((await docker(['network', 'connect', 'shop', 'dc'])).code, 0);
  assert.equal((await docker(['start', 'dc'])).code, 0);
  const moved = await waitFor('dc on shop', async () => {
    const r = await docker(['inspect', '-f', '{{.NetworkSettings.Networks.shop.IPAddress}}', 'dc']);
    return /^10\.89\.7\.\d+$/.test(r.stdout.trim()) ? r.stdout.trim() : undefined;
  });
  // on shop now: it finds redis by name, and shares its counter
  assert.match(await ns.httpUntil(`http://${moved}:8080/`), /^hits: \d+\n$/);
  assert.equal((await docker(['rm', '-f', 'dc'])).code, 0);
  assert.equal((await docker(['network', 'rm', 'dnet'])).code, 0);
});

test('a daemon restart keeps the networks, the addresses and the names', async () => {
  await d.stop();
  await d.start();
  assert.equal(await ns.httpUntil(`http://${counterIp}:8080/`), 'hits: 5\n');
});

test('deleting the instances and the networks leaves no tap, bridge, rule or address behind', async () => {
  assert.equal((await d.cli(['rm', '-f', 'counter', 'redis'])).code, 0);
  assert.equal(taps().length, 0);
  const rm = await d.cli(['network', 'rm', 'shop', 'bridge']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(bridges().map((b) => b.ifname), []);
  assert.deepEqual(addrsIn('10.89.'), []);
  assert.deepEqual(ns.nftTables(), []);
});
