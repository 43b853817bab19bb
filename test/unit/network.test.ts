// Networks without touching the host's network: subnet arithmetic, the nftables table as text,
// the core's checks (with bridged networks turned off, so nothing can be made), and the port
// relay of supervisors on 127.0.0.1. The real bridges, taps and rules are in
// test/integration/network.test.ts, inside a namespace of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIp, macFor, nextFree, overlaps, parseIp, parseSubnet, pickSubnet } from '../../src/network/subnet.js';
import { renderTables } from '../../src/network/nft.js';
import { NetworkService } from '../../src/core/networks.js';
import { Store } from '../../src/store/db.js';
import { isUnikError } from '../../src/model/errors.js';
import { startProxies } from '../../src/supervisor/port-proxy.js';

test('subnets: parsed strictly, hostile strings refused, overlaps and free addresses found', () => {
  assert.deepEqual(parseSubnet('10.89.0.0/24'), { base: parseIp('10.89.0.0'), prefix: 24 });
  for (const bad of ['10.89.0.0/24; rm -rf /', '../../etc/passwd', '10.89.0.0/33', '10.89.0.0/4', '300.1.1.0/24', '10.89.0.0', '', '10.89.0.0/+24', '0x0a.0.0.0/8'])
    assert.throws(() => parseSubnet(bad), (e: unknown) => isUnikError(e) && e.code === 'UNIK_ERR_BAD_SUBNET', bad);
  assert.throws(() => parseSubnet('10.89.0.5/24'), (e: unknown) => isUnikError(e) && /not a network address/.test(e.message) && e.hint === 'did you mean 10.89.0.0/24?');
  assert.ok(overlaps(parseSubnet('10.89.0.0/16'), parseSubnet('10.89.7.0/24')));
  assert.ok(!overlaps(parseSubnet('10.89.6.0/24'), parseSubnet('10.89.7.0/24')));
  const s = parseSubnet('10.89.7.0/29');
  const gw = parseIp('10.89.7.1')!;
  const used = new Set<number>();
  const got: string[] = [];
  for (let ip = nextFree(s, gw, used); ip !== undefined; ip = nextFree(s, gw, used)) {
    used.add(ip);
    got.push(formatIp(ip));
  }
  // neither the network, the gateway nor the broadcast address
  assert.deepEqual(got, ['10.89.7.2', '10.89.7.3', '10.89.7.4', '10.89.7.5', '10.89.7.6']);
  assert.equal(formatIp(pickSubnet([parseSubnet('10.89.0.0/23'), { base: parseIp('10.89.2.7')!, prefix: 32 }])!.base), '10.89.3.0');
  assert.match(macFor('ab'.repeat(32)), /^02:ab:ab:ab:ab:ab$/);
});

test('the nftables tables: NAT per network, nothing forwarded in but answers, gateways per network, each tap held to its own MAC and address', () => {
  const t = renderTables(
    'unik_1234abcd',
    [
      { bridge: 'unikbr11111111', subnet: '10.89.1.0/24', gateway: '10.89.1.1' },
      { bridge: 'unikbr22222222', subnet: '10.89.2.0/24', gateway: '10.89.2.1' },
    ],
    [{ tap: 'ukt0123456789ab', ip: '10.89.1.2', mac: '02:01:23:45:67:89' }],
  );
  assert.match(t, /^table ip unik_1234abcd \{/);
  assert.match(t, /ip saddr 10\.89\.1\.0\/24 oifname != "unikbr11111111" masquerade/);
  assert.match(t, /ip saddr 10\.89\.2\.0\/24 oifname != "unikbr22222222" masquerade/);
  assert.match(t, /iifname "unikbr11111111" ip daddr != 10\.89\.1\.1 drop/);
  assert.match(t, /ip daddr 10\.89\.2\.1 iifname != \{ "lo", "unikbr22222222" \} drop/);
  assert.match(t, /oifname "unikbr22222222" ct state established,related accept\n\s+oifname "unikbr22222222" drop/);
  assert.match(t, /iifname "unikbr11111111" ip saddr != 10\.89\.1\.0\/24 drop/);
  assert.match(t, /table bridge unik_1234abcd/);
  assert.match(t, /iifname "ukt0123456789ab" arp saddr ip != 10\.89\.1\.2 drop/);
  assert.match(t, /iifname "ukt0123456789ab" ether saddr != 02:01:23:45:67:89 drop/);
  // nothing but checked names and numbers reaches the script
  assert.throws(() => renderTables('t', [{ bridge: 'x" drop; flush ruleset; "', subnet: '10.0.0.0/8', gateway: '10.0.0.1' }], []), /refusing an nftables rule/);
  assert.throws(() => renderTables('t', [], [{ tap: 'ukt1', ip: '1.2.3.4 accept', mac: '02:00:00:00:00:00' }]), /refusing an nftables rule/);
});

test('core: hostile or bad network requests are refused before anything is made; without bridges, runs use user mode', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-net-'));
  const was = process.env.UNIK_BRIDGED;
  process.env.UNIK_BRIDGED = 'off';
  const store = new Store(join(dir, 'state.db'));
  try {
    const nets = new NetworkService(store, dir);
    const refused = async (req: Parameters<NetworkService['create']>[0], code: string) => {
      await assert.rejects(nets.create(req), (e: unknown) => isUnikError(e) && e.code === `UNIK_ERR_${code}`, JSON.stringify(req));
    };
    await refused({ name: '../../etc' }, 'BAD_NAME');
    await refused({ name: 'a b' }, 'BAD_NAME');
    await refused({ name: '-rf' }, 'BAD_NAME');
    await refused({ name: 'host' }, 'RESERVED_NETWORK');
    await refused({ name: 'user' }, 'RESERVED_NETWORK');
    await refused({ name: 'ok', subnet: '10.0.0.0/8 masquerade' }, 'BAD_SUBNET');
    await refused({ name: 'ok', subnet: '10.89.9.0/24', gateway: '10.89.9.0' }, 'BAD_GATEWAY');
    await refused({ name: 'ok', subnet: '10.89.9.0/24', gateway: '10.89.10.1' }, 'BAD_GATEWAY');
    await refused({ name: 'ok', gateway: '10.89.9.1' }, 'BAD_GATEWAY');
    await refused({ name: 'ok', labels: { k: 'v'.repeat(5000) } }, 'BAD_LABEL');
    // a good request, on a host where bridges are off: a clear 503, and nothing made
    await refused({ name: 'ok', subnet: '10.89.9.0/24' }, 'NO_BRIDGED_NETWORKS');
    assert.deepEqual(store.listNetworks(), []);
    assert.equal(await nets.forRun(undefined), 'user');
    assert.equal(await nets.forRun('default'), 'user');
    await assert.rejects(nets.forRun('host'), /not possible for a unikernel/);
    await assert.rejects(nets.forRun('nosuch'), /no such network: nosuch/);

    // addresses from a recorded network: the gateway is skipped, a full network is a clear error
    store.insertNetwork({ id: 'f'.repeat(64), name: 'tiny', driver: 'bridge', subnet: '10.89.9.0/29', gateway: '10.89.9.1', bridge: 'unikbrffffffff', created: new Date().toISOString(), labels: {} });
    const tiny = nets.get('tiny');
    const ips: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `${i}`.repeat(64);
      const a = nets.allocate(tiny, id);
      ips.push(a.ip);
      store.insertImage({ id: `img${i}`, name: `img${i}`, provider: 'qemu', sizeBytes: 1, created: '', manifest: {} as never });
      store.insertInstance({ id, name: `i${i}`, imageId: `img${i}`, provider: 'qemu', created: '', spec: { env: {}, memoryMb: 64, ports: [], network: a }, status: { state: 'created', pid: null, exitCode: null, error: '', startedAt: null, finishedAt: null, accel: '' } });
    }
    assert.deepEqual(ips, ['10.89.9.2', '10.89.9.3', '10.89.9.4', '10.89.9.5', '10.89.9.6']);
    assert.throws(() => nets.allocate(tiny, 'x'.repeat(64)), /no free address left/);
    await assert.rejects(nets.remove('tiny'), /in use by i0, i1, i2, i3, i4/);
    await nets.close();
  } finally {
    store.close();
    if (was === undefined) delete process.env.UNIK_BRIDGED;
    else process.env.UNIK_BRIDGED = was;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('published ports on bridged networks: the supervisor relays TCP and UDP, refuses a taken port, and lets go when closed', async () => {
  const echo = createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
  await new Promise((r) => echo.once('listening', r));
  const udpEcho = createSocket('udp4');
  udpEcho.on('message', (m, from) => udpEcho.send(Buffer.concat([Buffer.from('re:'), m]), from.port, from.address));
  await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r));
  const guestPort = (echo.address() as AddressInfo).port;
  const probe = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const hostPort = (probe.address() as AddressInfo).port;
  probe.close();
  const udpHost = hostPort + 1;
  const proxies = await startProxies([
    { protocol: 'tcp', hostIp: '127.0.0.1', hostPort, guestIp: '127.0.0.1', guestPort },
    { protocol: 'udp', hostIp: '127.0.0.1', hostPort: udpHost, guestIp: '127.0.0.1', guestPort: udpEcho.address().port },
  ]);
  try {
    const said = await new Promise<string>((resolve, reject) => {
      const c = connect(hostPort, '127.0.0.1');
      c.on('error', reject);
      c.end('hello through the relay');
      let got = '';
      c.on('data', (d) => (got += d));
      c.on('end', () => resolve(got));
    });
    assert.equal(said, 'hello through the relay');
    const client = createSocket('udp4');
    const answer = new Promise<string>((r) => client.once('message', (m) => r(String(m))));
    client.send('ping', udpHost, '127.0.0.1');
    assert.equal(await answer, 're:ping');
    client.close();
    await assert.rejects(startProxies([{ protocol: 'tcp', hostIp: '127.0.0.1', hostPort, guestIp: '127.0.0.1', guestPort }]), /cannot listen on 127\.0\.0\.1:\d+\/tcp: EADDRINUSE/);
  } finally {
    proxies.close();
    echo.close();
    udpEcho.close();
  }
  // closed: the port is free again
  const again = createServer().listen(hostPort, '127.0.0.1');
  await new Promise((r, j) => (again.once('listening', r), again.once('error', j)));
  again.close();
});
