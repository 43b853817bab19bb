// Proof tests from a hostile review of bridged networks (commit 61f7ba6). Nothing here touches
// the host's network: bridged networks are off (UNIK_BRIDGED=off), every socket is on 127.0.0.1,
// no bridge, tap, address or nftables rule is made, and no network is removed through the core
// (removal would run `ip` and `nft` on this host).
//
// Each "hostile: …" test asserts the safe behaviour; each failed against the reviewed code,
// which was fixed after it. "holds: …" tests show a defence that worked from the start.
process.env.UNIK_BRIDGED = 'off';
process.env.UNIK_DEFAULT_NETWORK = 'user';

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { NetworkService } from '../../src/core/networks.js';
import { Store } from '../../src/store/db.js';
import { startDnsServer } from '../../src/network/dns.js';
import { isUnikError } from '../../src/model/errors.js';
import { createCore } from '../../src/core/core.js';
import { buildApp } from '../../src/daemon/app.js';
import { unikPaths } from '../../src/model/paths.js';
import type { InstanceRecord, NetworkRecord } from '../../src/model/types.js';

/** the compiled sources, for child processes */
const DIST_SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function networkRecord(over: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    id: 'abcdef01'.repeat(8),
    name: 'shop',
    driver: 'bridge',
    subnet: '10.89.0.0/16',
    gateway: '10.89.0.1',
    bridge: 'unikbrabcdef01',
    created: '2024-01-01T00:00:00.000Z',
    labels: {},
    ...over,
  };
}

function instanceOn(store: Store, nets: NetworkService, net: NetworkRecord, i: number, name = `vm${i}`): void {
  const id = i.toString(16).padStart(64, '0');
  const network = nets.allocate(net, id);
  const inst: InstanceRecord = {
    id,
    name,
    imageId: 'img',
    provider: 'qemu',
    created: new Date(1_700_000_000_000 + i).toISOString(),
    spec: { env: { PAD: 'x'.repeat(200) }, memoryMb: 64, ports: [], args: [], autoRemove: false, labels: {}, network },
    status: { state: 'running', pid: null, exitCode: null, error: '', startedAt: null, finishedAt: null, accel: '' },
  };
  store.insertInstance(inst);
}

function freeTcpPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function canRaw(): boolean {
  return process.getuid?.() === 0 && spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;
}

/** A UDP datagram to 127.0.0.1:port whose source port is 0 (a raw socket: root only). */
function sendFromPortZero(port: number): void {
  const py = `
import socket, struct
def cs(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
a = socket.inet_aton('127.0.0.1'); p = b'hello from port 0'; n = 8 + len(p)
c = cs(a + a + struct.pack('!BBH', 0, 17, n) + struct.pack('!HHHH', 0, ${port}, n, 0) + p) or 0xffff
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).sendto(struct.pack('!HHHH', 0, ${port}, n, c) + p, ('127.0.0.1', 0))
`;
  const r = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Runs an ES module text in a child node; resolves its output once `done` appears or the deadline passes (then it is killed). */
function child(code: string, done: RegExp, deadlineMs: number): Promise<{ out: string; output: () => string; finished: boolean; kill: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'unik-nethostile-'));
  const file = join(dir, 'child.mjs');
  writeFileSync(file, code);
  const p = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNIK_BRIDGED: 'off', UNIK_DEFAULT_NETWORK: 'user' } });
  let out = '';
  let exit: number | null = null;
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.on('exit', (c) => (exit = c ?? -1));
  const kill = () => {
    if (exit === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve) => {
    const finish = (finished: boolean) => resolve({ out, output: () => out, finished, kill });
    const timer = setTimeout(() => finish(false), deadlineMs);
    p.stdout.on('data', () => {
      if (done.test(out)) {
        clearTimeout(timer);
        finish(true);
      }
    });
    p.on('exit', () => {
      clearTimeout(timer);
      setTimeout(() => finish(done.test(out)), 50);
    });
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * A network "shop" in a fresh store, with its DNS server on 127.0.0.1 answering from the
 * network's zone as NetworkService.bringUp wires it (no upstreams: nothing leaves 127.0.0.1),
 * and a UDP client bound beside it. `fill` adds instances before the server starts.
 */
async function withDnsZone(
  prefix: string,
  fill: (store: Store, nets: NetworkService, net: NetworkRecord) => void,
  body: (z: { store: Store; client: ReturnType<typeof createSocket>; port: number }) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = new Store(join(dir, 'state.db'));
  const nets = new NetworkService(store, dir);
  let dns: Awaited<ReturnType<typeof startDnsServer>> | undefined;
  const client = createSocket('udp4');
  try {
    store.insertNetwork(networkRecord());
    store.insertImage({ id: 'img', name: 'img', provider: 'qemu', sizeBytes: 1, created: '', manifest: {} as never });
    const net = nets.get('shop');
    fill(store, nets, net);
    const lookup = (name: string) => (nets as unknown as { lookup(n: NetworkRecord, s: string): string | undefined }).lookup(net, name);
    dns = await startDnsServer({ host: '127.0.0.1', port: 0, upstreams: [], zone: { lookup } });
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    await body({ store, client, port: dns.port });
  } finally {
    client.close();
    await dns?.close();
    await nets.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('hostile: a DNS flood from a guest does not read the instance table per query (the daemon stays free)', async (t) => {
  const INSTANCES = 200;
  let scans = 0;
  await withDnsZone(
    'unik-nethostile-dns-',
    (store, nets, net) => {
      for (let i = 0; i < INSTANCES; i++) instanceOn(store, nets, net, i);
      const list = store.listInstances.bind(store);
      store.listInstances = () => (scans++, list());
    },
    async ({ client, port }) => {
      const QUERIES = 500;
      // one at a time (a burst would overflow the socket's receive buffer while the daemon scans)
      const ask = (id: number) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => (client.off('message', on), resolve(false)), 2000);
          const on = () => (clearTimeout(timer), client.off('message', on), resolve(true));
          client.on('message', on);
          client.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: id % 2 ? 'vm7' : 'nosuch' }] }), port, '127.0.0.1');
        });
      let answered = 0;
      const t0 = performance.now();
      for (let i = 0; i < QUERIES; i++) if (await ask(i)) answered++;
      const ms = performance.now() - t0;
      t.diagnostic(`${answered}/${QUERIES} answered in ${ms.toFixed(0)} ms with ${INSTANCES} instances: ${scans} full scans of the instance table (${(ms / QUERIES).toFixed(2)} ms per query, on the daemon's event loop)`);
      // a lookup should be a map lookup, not SELECT * + JSON.parse of every instance per packet
      assert.ok(scans <= QUERIES / 10, `${scans} instance-table scans for ${QUERIES} DNS packets: a guest's query flood starves the daemon's event loop (API, every other network's DNS)`);
    },
  );
});

test('hostile: a UDP datagram from source port 0 to a published port does not kill the relay (the VM\'s supervisor)', { skip: canRaw() ? false : 'needs root and python3 for a raw socket on 127.0.0.1' }, async () => {
  // the "guest": a UDP echo on 127.0.0.1
  const guest = createSocket('udp4');
  guest.on('message', (m, from) => guest.send(m, from.port, from.address));
  await new Promise<void>((r) => guest.bind(0, '127.0.0.1', r));
  const hostPort = await freeTcpPort();
  // the relay runs in a child, as it runs in the supervisor: an uncaught exception ends the process
  const c = child(
    `const { startProxies } = await import(${JSON.stringify(join(DIST_SRC, 'supervisor/port-proxy.js'))});
     await startProxies([{ protocol: 'udp', hostIp: '127.0.0.1', hostPort: ${hostPort}, guestIp: '127.0.0.1', guestPort: ${guest.address().port} }]);
     console.log('READY');
     setInterval(() => {}, 1000);`,
    /READY/,
    10_000,
  );
  const ready = await c;
  try {
    assert.ok(ready.finished, `the relay did not start: ${ready.out}`);
    // an ordinary client works
    const ok = createSocket('udp4');
    const echoed = new Promise<string>((r) => ok.once('message', (m) => r(String(m))));
    ok.send('ping', hostPort, '127.0.0.1');
    assert.equal(await echoed, 'ping');
    ok.close();

    sendFromPortZero(hostPort);
    await new Promise((r) => setTimeout(r, 1500));
    // does the relay still answer?
    const after = await new Promise<boolean>((resolve) => {
      const probe = createSocket('udp4');
      const timer = setTimeout(() => (probe.close(), resolve(false)), 1500);
      probe.once('message', () => (clearTimeout(timer), probe.close(), resolve(true)));
      probe.send('still there?', hostPort, '127.0.0.1');
    });
    assert.ok(after, `the relay died after one datagram from port 0 (front.send(answer, 0, …) throws ERR_SOCKET_BAD_PORT in an event handler); its output:\n${ready.output()}`);
  } finally {
    ready.kill();
    guest.close();
  }
});

test('hostile: subnets that are not ordinary unicast ranges are refused (loopback, "this network", link-local/metadata, multicast, reserved)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-nethostile-subnet-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    const nets = new NetworkService(store, dir);
    const passed: string[] = [];
    for (const subnet of ['127.0.0.0/8', '0.0.0.0/8', '169.254.169.0/24', '224.0.0.0/24', '240.0.0.0/24', '255.255.255.0/24']) {
      // with bridges off, a request that passes every check stops at NO_BRIDGED_NETWORKS (nothing is made)
      const e = await nets.create({ name: 'n', subnet }).then(
        () => undefined,
        (err: unknown) => err,
      );
      if (isUnikError(e) && e.code === 'UNIK_ERR_NO_BRIDGED_NETWORKS') passed.push(subnet);
    }
    assert.deepEqual(passed, [], `accepted as network subnets: ${passed.join(', ')} (a 169.254.169.0/24 network takes the cloud metadata address off the host's default route; 127.0.0.0/8 puts 127.0.0.1 on a bridge and binds its DNS on 127.0.0.1:53)`);
    await nets.close();
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile: allocate() gives no address on a network whose record is gone (a run racing `network rm`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-nethostile-race-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    const nets = new NetworkService(store, dir);
    store.insertNetwork(networkRecord());
    const net = nets.get('shop'); // what forRun handed to prepare()
    store.deleteNetwork(net.id); // network rm finished meanwhile
    assert.throws(() => nets.allocate(net, 'e'.repeat(64)), (e: unknown) => isUnikError(e) && /NETWORK/.test(e.code), 'allocate must re-read the network inside the transaction');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hostile: GET /networks?filters={"id":[REGEX]}: a backtracking regular expression does not hang the daemon', async () => {
  const code = `
    const { mkdtempSync } = await import('node:fs'); const { tmpdir } = await import('node:os'); const { join } = await import('node:path');
    const src = ${JSON.stringify(DIST_SRC)};
    const { Store } = await import(join(src, 'store/db.js'));
    const { unikPaths } = await import(join(src, 'model/paths.js'));
    const { createCore } = await import(join(src, 'core/core.js'));
    const { buildApp } = await import(join(src, 'daemon/app.js'));
    const home = process.env.REDOS_HOME;
    const core0 = await createCore({ home, watch: false }); core0.close();
    const s = new Store(unikPaths(home).db);
    s.insertNetwork(${JSON.stringify(networkRecord())});
    s.close();
    const core = await createCore({ home, watch: false });
    const app = await buildApp({ core }); await app.ready();
    const get = (f) => app.inject({ method: 'GET', url: '/v1.43/networks?filters=' + encodeURIComponent(JSON.stringify(f)), headers: { host: '127.0.0.1' } });
    const plain = await get({ id: ['abcdef'] });
    console.log('READY', plain.statusCode, JSON.parse(plain.body).length);
    const t = Date.now();
    const r = await get({ id: ['^([0-9a-f]|[0-9a-f])*z$'] });
    console.log('DONE', r.statusCode, Date.now() - t, 'ms');
    process.exit(0);
  `;
  const home = mkdtempSync(join(tmpdir(), 'unik-nethostile-redos-'));
  process.env.REDOS_HOME = home;
  const r = await child(code, /DONE/, 20_000);
  delete process.env.REDOS_HOME;
  try {
    assert.match(r.out, /READY 200 1/, `the setup failed: ${r.out}`);
    assert.ok(r.finished, `one GET /networks with a filter regex did not finish in seconds: the daemon's event loop is stuck in a backtracking RegExp (new RegExp(userValue) in match()); output: ${r.out}`);
  } finally {
    r.kill();
    rmSync(home, { recursive: true, force: true });
  }
});

test('hostile: the label filter does not match inherited properties ({"label":["constructor"]})', async () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-nethostile-label-'));
  const core = await createCore({ home, watch: false });
  try {
    const s = new Store(unikPaths(home).db);
    s.insertNetwork(networkRecord({ labels: {} }));
    s.close();
    const app = await buildApp({ core });
    await app.ready();
    try {
      const r = await app.inject({ method: 'GET', url: `/v1.43/networks?filters=${encodeURIComponent(JSON.stringify({ label: ['constructor'] }))}`, headers: { host: '127.0.0.1' } });
      assert.equal(r.statusCode, 200, r.body);
      // the same matchLabels decides `docker network prune --filter label=…` (and label!=…): it would delete the wrong ones
      assert.deepEqual(
        r.json().map((n: { Name: string }) => n.Name),
        [],
        'a network without a "constructor" label matched `label=constructor` (`k in labels` sees Object.prototype)',
      );
    } finally {
      await app.close();
    }
  } finally {
    core.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('hostile: DNS: an instance named like a public host (dots are allowed in names) does not take that name over', async () => {
  await withDnsZone(
    'unik-nethostile-dotted-',
    // another API user's instance on the shared network, named after a public host
    (store, nets, net) => instanceOn(store, nets, net, 1, 'registry.npmjs.org'),
    async ({ client, port }) => {
      const answer = new Promise<Buffer>((r) => client.once('message', r));
      client.send(dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'registry.npmjs.org' }] }), port, '127.0.0.1');
      const got = dnsPacket.decode(await answer);
      const a = got.answers?.find((x) => x.type === 'A');
      assert.equal(a, undefined, `registry.npmjs.org resolved to instance address ${a && (a as { data: string }).data} for the guests of this network: only single-label and .unik names should be answered from the zone`);
    },
  );
});

test('holds: Labels {"__proto__": …} on POST /networks/create is refused before any code sees it (no prototype pollution)', async () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-nethostile-proto-'));
  const core = await createCore({ home, watch: false });
  const app = await buildApp({ core });
  await app.ready();
  try {
    const r = await app.inject({
      method: 'POST',
      url: '/v1.43/networks/create',
      headers: { host: '127.0.0.1', 'content-type': 'application/json' },
      payload: '{"Name":"p","Labels":{"__proto__":{"polluted":"yes"}}}',
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(core.networks.list().length, 0);
  } finally {
    await app.close();
    core.close();
    rmSync(home, { recursive: true, force: true });
  }
});
