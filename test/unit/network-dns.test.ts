// The per-network DNS server: instance names answered from the zone, other names forwarded, and
// hostile input survived. Everything stays on 127.0.0.1: the upstreams are fakes started here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet } from 'dns-packet';
import { parseResolvConf, startDnsServer, type DnsServer } from '../../src/network/dns.js';

const HOST = '127.0.0.1';
const zone = { lookup: (name: string) => (name === 'redis' ? '10.89.0.7' : undefined) };

type Reply = DecodedPacket & { rcode?: string };

function query(name: string, type = 'A', id = 1234): Packet {
  return { type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] };
}

/** Sends one datagram and waits for the first answer (or undefined after `ms`). */
function udpAsk(port: number, msg: Buffer | Packet, ms = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (b?: Buffer) => {
      clearTimeout(timer);
      sock.close();
      resolve(b);
    };
    const timer = setTimeout(() => done(), ms);
    sock.on('message', (m) => done(m));
    sock.send(Buffer.isBuffer(msg) ? msg : dnsPacket.encode(msg), port, HOST);
  });
}

async function udpQuery(port: number, p: Packet): Promise<Reply> {
  const b = await udpAsk(port, p);
  assert.ok(b, 'no answer over UDP');
  return dnsPacket.decode(b) as Reply;
}

/** Writes `bytes` on one TCP connection and collects `count` length-prefixed answers. */
function tcpAsk(port: number, bytes: Buffer, count: number): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, HOST);
    let buf = Buffer.alloc(0);
    const out: Reply[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`only ${out.length} of ${count} answers over TCP`));
    }, 3000);
    sock.on('error', reject);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))) as Reply);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= count) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.write(bytes);
  });
}

function aOf(r: Reply): string[] {
  return (r.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : []));
}

/** A fake upstream: answers every query with `address` (and TC set over UDP if `truncate`). */
async function fakeUpstream(address: string, opts: { truncate?: boolean; tcpAddress?: string } = {}) {
  const seen: number[] = [];
  const answer = (msg: Buffer, over: 'udp' | 'tcp') => {
    const q = dnsPacket.decode(msg);
    seen.push(q.id ?? -1);
    const truncated = over === 'udp' && opts.truncate;
    const data = over === 'tcp' ? (opts.tcpAddress ?? address) : address;
    return dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE | (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: q.questions,
      answers: truncated ? [] : [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data }],
    });
  };
  const udp = createSocket('udp4');
  udp.on('message', (m, from) => udp.send(answer(m, 'udp'), from.port, from.address));
  await new Promise<void>((r) => udp.bind(0, HOST, () => r()));
  const port = udp.address().port;
  let tcp: Server | undefined;
  if (opts.tcpAddress) {
    tcp = createServer((c) =>
      c.on('data', (b: Buffer) => {
        const out = answer(b.subarray(2), 'tcp');
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length);
        c.write(Buffer.concat([len, out]));
      }),
    );
    await new Promise<void>((r) => tcp!.listen(port, HOST, () => r()));
  }
  return {
    port,
    seen,
    close: async () => {
      udp.close();
      if (tcp) await new Promise((r) => tcp!.close(r));
    },
  };
}

/** A UDP port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s: UdpSocket = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function withServer(upstreams: string[], fn: (dns: DnsServer) => Promise<void>): Promise<void> {
  const dns = await startDnsServer({ host: HOST, port: 0, zone, upstreams });
  try {
    await fn(dns);
  } finally {
    await dns.close();
  }
}

test('instance names get their A record, TTL 0, authoritative, id and question echoed', async () => {
  await withServer([], async ({ port }) => {
    for (const name of ['redis', 'REDIS.', 'redis.unik', 'Redis.UNIK.']) {
      const r = await udpQuery(port, query(name, 'A', 777));
      assert.equal(r.id, 777);
      assert.equal(r.rcode, 'NOERROR', name);
      assert.ok(r.flag_qr && r.flag_aa && r.flag_ra && r.flag_rd, name);
      assert.equal(r.questions?.length, 1);
      assert.equal(r.questions![0]!.name.toLowerCase(), name.toLowerCase().replace(/\.$/, ''));
      assert.equal(r.questions![0]!.type, 'A');
      assert.deepEqual(aOf(r), ['10.89.0.7'], name);
      assert.equal(r.answers![0]!.type === 'A' && r.answers![0]!.ttl, 0);
    }
    assert.deepEqual(aOf(await udpQuery(port, query('redis', 'ANY'))), ['10.89.0.7']);
  });
});

test('AAAA of an instance is an empty NOERROR; unknown and .unik names are NXDOMAIN; others without upstreams SERVFAIL', async () => {
  await withServer([], async ({ port }) => {
    const aaaa = await udpQuery(port, query('redis', 'AAAA'));
    assert.equal(aaaa.rcode, 'NOERROR');
    assert.equal(aaaa.answers?.length, 0);
    for (const name of ['nosuch', 'nosuch.unik', 'a.b.unik', 'unik']) {
      const r = await udpQuery(port, query(name));
      assert.equal(r.rcode, 'NXDOMAIN', name);
      assert.ok(r.flag_aa);
      assert.equal(r.answers?.length, 0);
    }
    const other = await udpQuery(port, query('example.com'));
    assert.equal(other.rcode, 'SERVFAIL');
    assert.equal(other.id, 1234);
  });
});

test('other names are forwarded, the answer relayed with the client id; a dead upstream is skipped at once', async () => {
  const up = await fakeUpstream('1.2.3.4');
  const dead = await deadPort();
  try {
    await withServer([`${HOST}:${dead}`, `${HOST}:${up.port}`], async ({ port }) => {
      const started = Date.now();
      const r = await udpQuery(port, query('example.com', 'A', 4242));
      assert.equal(r.id, 4242);
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(aOf(r), ['1.2.3.4']);
      assert.equal(up.seen.length, 1);
      assert.ok(Date.now() - started < 1500, 'the closed port should fail over without waiting 2 s');
      // instance names never reach the upstream
      await udpQuery(port, query('redis'));
      await udpQuery(port, query('nosuch'));
      assert.equal(up.seen.length, 1);
    });
  } finally {
    await up.close();
  }
});

test('an upstream that is the server itself is never used', async () => {
  const port = await deadPort();
  const dns = await startDnsServer({ host: HOST, port, zone, upstreams: [`${HOST}:${port}`] });
  try {
    assert.equal(dns.port, port);
    const started = Date.now();
    const r = await udpQuery(port, query('example.com'));
    assert.equal(r.rcode, 'SERVFAIL');
    assert.ok(Date.now() - started < 1000);
  } finally {
    await dns.close();
  }
});

test('TCP: several queries on one connection, split across writes', async () => {
  await withServer([], async ({ port }) => {
    const one = dnsPacket.streamEncode(query('redis', 'A', 1));
    const two = dnsPacket.streamEncode(query('nosuch', 'A', 2));
    const both = Buffer.concat([one, two]);
    const answers = await tcpAsk(port, both, 2);
    const byId = new Map(answers.map((a) => [a.id, a]));
    assert.deepEqual(aOf(byId.get(1)!), ['10.89.0.7']);
    assert.equal(byId.get(2)!.rcode, 'NXDOMAIN');
    // one byte at a time
    const sock = connect(port, HOST);
    const got = new Promise<Buffer>((resolve) => sock.once('data', resolve));
    for (const b of one) {
      sock.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    const r = dnsPacket.decode((await got).subarray(2));
    sock.destroy();
    assert.equal(r.id, 1);
  });
});

test('a TCP client gets the whole answer when the upstream truncates over UDP; a UDP client gets TC', async () => {
  const up = await fakeUpstream('9.9.9.9', { truncate: true, tcpAddress: '5.6.7.8' });
  try {
    await withServer([`${HOST}:${up.port}`], async ({ port }) => {
      const [viaTcp] = await tcpAsk(port, dnsPacket.streamEncode(query('big.example.com', 'A', 99)), 1);
      assert.equal(viaTcp!.id, 99);
      assert.deepEqual(aOf(viaTcp!), ['5.6.7.8']);
      const viaUdp = await udpQuery(port, query('big.example.com', 'A', 98));
      assert.equal(viaUdp.id, 98);
      assert.ok(viaUdp.flag_tc);
    });
  } finally {
    await up.close();
  }
});

test('hostile input: garbage, short headers, responses, other opcodes; the server still answers', async () => {
  await withServer([], async ({ port }) => {
    const sock = createSocket('udp4');
    let replies = 0;
    sock.on('message', () => replies++);
    await new Promise<void>((r) => sock.bind(0, HOST, () => r()));
    for (let i = 0; i < 1000; i++) {
      const b = randomBytes(Math.floor(Math.random() * 600));
      if (i % 2 === 0 && b.length >= 3) b[2]! &= 0x07; // QR and opcode clear: into the decoder
      sock.send(b, port, HOST);
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    sock.send(Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00]), port, HOST); // a truncated header
    await new Promise((r) => setTimeout(r, 200));
    sock.close();
    assert.ok(replies > 0, 'readable headers get FORMERR or NOTIMP');
    // at most 200 a second per client; the flood may straddle two of the server's seconds
    assert.ok(replies <= 400, `a flooding client is answered at most 200 times a second (got ${replies})`);
    // the flood's second is over: the client is heard again
    await new Promise((r) => setTimeout(r, 1100));

    // a whole header claiming a question that is not there: FORMERR with the same id
    const short = await udpAsk(port, Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]));
    assert.ok(short);
    const formerr = dnsPacket.decode(short) as Reply;
    assert.equal(formerr.id, 0xabcd);
    assert.equal(formerr.rcode, 'FORMERR');
    // STATUS (opcode 2): NOTIMP
    const status = await udpAsk(port, dnsPacket.encode({ ...query('redis'), flags: 2 << 11 }));
    assert.equal((dnsPacket.decode(status!) as Reply).rcode, 'NOTIMP');
    // a response is never answered (two servers could answer each other forever)
    const resp = await udpAsk(port, dnsPacket.encode({ ...query('redis'), type: 'response' }), 300);
    assert.equal(resp, undefined);
    // too short for a header: silence
    assert.equal(await udpAsk(port, Buffer.from([1, 2, 3]), 300), undefined);

    // TCP: a frame claiming 65535 bytes then closing, and a frame of garbage
    await new Promise<void>((resolve) => {
      const c = connect(port, HOST, () => {
        c.end(Buffer.from([0xff, 0xff, 1, 2, 3]));
      });
      c.on('close', () => resolve());
      c.on('error', () => resolve());
      c.resume();
    });
    const garbage = Buffer.concat([Buffer.from([0, 20]), randomBytes(20)]);
    garbage[4] = 0; // QR and opcode clear
    await new Promise<void>((resolve) => {
      const c = connect(port, HOST, () => c.end(garbage));
      c.on('close', () => resolve());
      c.on('error', () => resolve());
      c.resume();
    });

    assert.deepEqual(aOf(await udpQuery(port, query('redis'))), ['10.89.0.7']);
    const [overTcp] = await tcpAsk(port, dnsPacket.streamEncode(query('redis')), 1);
    assert.deepEqual(aOf(overTcp!), ['10.89.0.7']);
  });
});

test('at most 64 TCP connections; close() ends them and frees the port', async () => {
  const dns = await startDnsServer({ host: HOST, port: 0, zone, upstreams: [] });
  const conns = await Promise.all(
    Array.from({ length: 64 }, () => new Promise<ReturnType<typeof connect>>((r) => {
      const c = connect(dns.port, HOST, () => r(c));
      c.on('error', () => {});
    })),
  );
  // the 65th is accepted by the kernel and closed by the server at once
  const extra = connect(dns.port, HOST);
  extra.on('error', () => {});
  await new Promise((r) => extra.on('close', r));
  // the 64 still work
  const closedAll = Promise.all(conns.map((c) => new Promise((r) => c.on('close', r))));
  const answer = new Promise<Buffer>((r) => conns[0]!.once('data', r));
  conns[0]!.write(dnsPacket.streamEncode(query('redis')));
  assert.deepEqual(aOf(dnsPacket.decode((await answer).subarray(2)) as Reply), ['10.89.0.7']);

  await dns.close();
  await closedAll;
  // both ports are free again
  const udp = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(dns.port, HOST, () => resolve());
  });
  udp.close();
  const tcp = createServer();
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(dns.port, HOST, () => resolve());
  });
  await new Promise((r) => tcp.close(r));
});

test('parseResolvConf: IPv4 nameservers in order, comments, IPv6 and options ignored', () => {
  const text = [
    '# generated by NetworkManager',
    'search example.org lan',
    'nameserver 192.168.1.1',
    '; a comment',
    'nameserver   8.8.8.8   # Google',
    'nameserver 2001:4860:4860::8888',
    'nameserver fe80::1%eth0',
    '#nameserver 10.0.0.1',
    'options edns0 trust-ad ndots:2',
    'nameserver 1.1.1.1;trailing',
    'nameserver 192.168.1.1',
    'nameserver not-an-ip',
    '\tnameserver\t127.0.0.53',
    '',
  ].join('\n');
  assert.deepEqual(parseResolvConf(text), ['192.168.1.1', '8.8.8.8', '1.1.1.1', '127.0.0.53']);
  assert.deepEqual(parseResolvConf(''), []);
});

test('a bad upstream or host is an error at start, leaving nothing bound', async () => {
  await assert.rejects(startDnsServer({ host: HOST, port: 0, zone, upstreams: ['dns.example.com'] }), /upstream/);
  await assert.rejects(startDnsServer({ host: 'localhost', port: 0, zone, upstreams: [] }), /host/);
});
