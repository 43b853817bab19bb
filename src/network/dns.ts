// The DNS server unik runs on each bridged network's gateway address, so the unikernels on it
// find each other by instance name (`redis`, or `redis.unik`), as Docker's embedded DNS and
// podman's aardvark-dns do; other names go to the host's resolvers. Every packet is hostile
// until dns-packet has decoded it, and nothing a client sends can throw out of a handler.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { connect, createServer, isIP, isIPv4, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';

export interface DnsZone {
  /** the A record for a name asked on this network, or undefined. name is lower-cased, without trailing dot */
  lookup(name: string): string | undefined;
}

export interface DnsServerOptions {
  /** the address to bind (the bridge's gateway address, e.g. 10.89.0.1) */
  host: string;
  /** default 53; 0 = any free port (UDP and TCP get the same one) */
  port?: number;
  zone: DnsZone;
  /**
   * resolvers for other names, `ADDR` (port 53) or `ADDR:PORT` / `[ADDR6]:PORT`; default: the
   * nameservers of /etc/resolv.conf other than `host`; [] = other names get SERVFAIL
   */
  upstreams?: string[];
  /** who may ask (the network's own subnet); others are ignored: names do not leak across networks */
  allowFrom?: (address: string) => boolean;
  log?: (msg: string) => void;
}

export interface DnsServer {
  port: number;
  close(): Promise<void>;
}

/** The suffix a name may carry on a unik network (`redis.unik` is `redis`); never forwarded. */
const SUFFIX = '.unik';
const UPSTREAM_TIMEOUT_MS = 2000;
const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 64;
/** queries one client may send per second; beyond, they are dropped (a flooding guest) */
const PER_CLIENT_PER_SECOND = 200;
/** bytes of answers queued for a TCP client that asks but does not read, before it is cut off */
const TCP_MAX_BACKLOG = 256 * 1024;
/** forwards waiting on an upstream; past this, queries for other names are dropped (clients retry) */
const MAX_FORWARDS = 256;
/** the classic UDP message limit; our own answers never need EDNS to fit */
const UDP_MAX = 512;
const HEADER_BYTES = 12;

// Header bits (RFC 1035 4.1.1). dns-packet decodes all or nothing, so to answer FORMERR or
// NOTIMP to a packet it cannot (or need not) decode, the fixed id and flags words are read here.
const QR = 0x8000;
const OPCODE_MASK = 0x7800;
const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const TC = dnsPacket.TRUNCATED_RESPONSE;
const RD = dnsPacket.RECURSION_DESIRED;
const RA = dnsPacket.RECURSION_AVAILABLE;

const NOERROR = 0;
const FORMERR = 1;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const NOTIMP = 4;
const REFUSED = 5;

interface Upstream {
  address: string;
  port: number;
  family: 4 | 6;
}

/** the nameservers in a resolv.conf text (IPv4 only), in order */
export function parseResolvConf(text: string): string[] {
  const found: string[] = [];
  for (const raw of text.split('\n')) {
    const [key, value] = raw.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && value && isIPv4(value) && !found.includes(value)) found.push(value);
  }
  return found;
}

function parseUpstream(s: string): Upstream {
  const text = s.trim();
  const bare = isIP(text);
  if (bare) return { address: text, port: 53, family: bare as 4 | 6 };
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const family = m ? isIP(m[1]!) : 0;
  const port = m ? Number(m[2]) : 0;
  if (!m || !family || port < 1 || port > 65535) throw new Error(`dns: upstream is not ADDR or ADDR:PORT: ${s}`);
  return { address: m[1]!, port, family: family as 4 | 6 };
}

function defaultUpstreams(host: string): Upstream[] {
  let text = '';
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // no resolv.conf: other names get SERVFAIL
  }
  return parseResolvConf(text)
    .filter((a) => a !== host)
    .map(parseUpstream);
}

/** Splits a TCP stream into DNS messages (each after a 2-byte length), copying each byte at most once. */
class FrameReader {
  private chunks: Buffer[] = [];
  private held = 0;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.held >= 2) {
      const first = this.chunks[0]!;
      const len = first.length >= 2 ? first.readUInt16BE(0) : (first[0]! << 8) | this.chunks[1]![0]!;
      if (this.held < 2 + len) break; // a frame claiming more than ever arrives waits for the idle timeout
      // joined only once a whole frame is here, so a sender trickling bytes costs no quadratic copying
      const all = this.chunks.length === 1 ? first : Buffer.concat(this.chunks, this.held);
      out.push(all.subarray(2, 2 + len));
      const rest = all.subarray(2 + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.held = rest.length;
    }
    return out;
  }
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** A copy of a message with another id: forwarded bytes are relayed as they are, not re-encoded. */
function withId(msg: Buffer, id: number): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id, 0);
  return out;
}

/** An upstream's answer, checked to be the response to the question we sent under `id`. */
function upstreamAnswer(msg: Buffer, id: number, q: Question): { raw: Buffer; truncated: boolean } | undefined {
  let r: DecodedPacket;
  try {
    r = dnsPacket.decode(msg);
  } catch {
    return undefined;
  }
  if (!r.flag_qr || r.id !== id) return undefined;
  const echoed = r.questions?.[0];
  // some servers leave the question out of FORMERR/NOTIMP answers; the id and the connected socket still tie it to us
  if (echoed && (echoed.name.toLowerCase() !== q.name.toLowerCase() || echoed.type !== q.type || echoed.class !== q.class)) {
    return undefined;
  }
  return { raw: msg, truncated: r.flag_tc };
}

class NetworkDns implements DnsServer {
  port = 0;
  private udp!: UdpSocket;
  private tcp!: Server;
  private upstreams: Upstream[] = [];
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly conns = new Set<Socket>();
  /** cancels each forward waiting on an upstream */
  private readonly pending = new Set<() => void>();
  private forwards = 0;
  private readonly lastWarned = new Map<string, number>();
  private allowFrom: (address: string) => boolean = () => true;
  /** queries per client address in the current second */
  private readonly counts = new Map<string, number>();
  private countsTimer?: NodeJS.Timeout;

  /** the client may ask now: it is allowed here and within its rate */
  private admit(address: string): boolean {
    if (!this.allowFrom(address)) return false;
    const n = (this.counts.get(address) ?? 0) + 1;
    this.counts.set(address, n);
    if (n === PER_CLIENT_PER_SECOND + 1) this.warn(`rate ${address}`, `dns: ${address} sends over ${PER_CLIENT_PER_SECOND} queries a second; the rest are dropped`);
    return n <= PER_CLIENT_PER_SECOND;
  }

  constructor(
    private readonly zone: DnsZone,
    private readonly log: (msg: string) => void,
  ) {}

  async start(o: DnsServerOptions): Promise<void> {
    const family = isIP(o.host);
    if (!family) throw new Error(`dns: host is not an IP address: ${o.host}`);
    const wanted = o.port ?? 53;
    // parsed before binding, so a bad upstream leaves no socket open
    const configured = o.upstreams ? o.upstreams.map(parseUpstream) : defaultUpstreams(o.host);

    for (let attempt = 1; ; attempt++) {
      const udp = createSocket(family === 6 ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(wanted, o.host, () => {
          udp.off('error', reject);
          resolve();
        });
      }).catch((e: unknown) => {
        try {
          udp.close();
        } catch {
          // never bound: nothing to close
        }
        throw e;
      });
      const port = udp.address().port;
      const tcp = createServer({ allowHalfOpen: true }, (conn) => this.serveTcp(conn));
      tcp.maxConnections = TCP_MAX_CONNECTIONS;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, o.host, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        udp.close();
        // with port 0, the UDP port the system picked may be taken for TCP: pick again
        if (wanted === 0 && (e as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 8) continue;
        throw e;
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      break;
    }

    if (o.allowFrom) this.allowFrom = o.allowFrom;
    this.countsTimer = setInterval(() => this.counts.clear(), 1000).unref();
    // never forward to ourselves: the query would come straight back, again and again
    const self = (u: Upstream) => u.port === this.port && (u.address === o.host || u.address === '0.0.0.0' || u.address === '::');
    this.upstreams = configured.filter((u) => !self(u));

    this.udp.on('error', (e) => this.warn('udp', `dns ${o.host}:${this.port}: ${e.message}`));
    this.udp.on('message', (msg, from) => {
      if (!this.admit(from.address)) return;
      void this.respond(msg, false).then((out) => {
        if (!out || this.closed) return;
        try {
          this.udp.send(out, from.port, from.address, () => {});
        } catch {
          // a forged source (port 0) makes send throw: there is no one to answer
        }
      });
    });
    this.tcp.on('error', (e) => this.warn('tcp', `dns ${o.host}:${this.port}: ${e.message}`));
  }

  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearInterval(this.countsTimer);
    for (const cancel of [...this.pending]) cancel();
    for (const conn of this.conns) conn.destroy();
    this.closing = Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]).then(() => undefined);
    return this.closing;
  }

  /** A message to log at most every 30 s per key, so a flood cannot fill the daemon's log. */
  private warn(key: string, msg: string): void {
    const now = Date.now();
    if (now - (this.lastWarned.get(key) ?? -Infinity) < 30_000) return;
    this.lastWarned.set(key, now);
    this.log(msg);
  }

  private serveTcp(conn: Socket): void {
    if (this.closed || !this.allowFrom(conn.remoteAddress ?? '')) {
      conn.destroy();
      return;
    }
    this.conns.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('error', () => {}); // resets and timeouts are a client's business
    conn.on('close', () => this.conns.delete(conn));
    const frames = new FrameReader();
    let answering = 0;
    let ended = false; // the client half-closed: finish its answers, then close
    conn.on('end', () => {
      ended = true;
      if (answering === 0) conn.end();
    });
    conn.on('data', (chunk: Buffer) => {
      for (const msg of frames.push(chunk)) {
        if (!this.admit(conn.remoteAddress ?? '')) continue;
        answering++;
        void this.respond(msg, true).then((out) => {
          answering--;
          if (out && !conn.destroyed && !this.closed) {
            if (conn.writableLength > TCP_MAX_BACKLOG) conn.destroy();
            else conn.write(framed(out));
          }
          if (ended && answering === 0) conn.end();
        });
      }
    });
  }

  /** The answer to one message, or undefined to stay silent. Never rejects. */
  private async respond(msg: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    if (msg.length < HEADER_BYTES) return undefined; // not even a header: no id to answer to
    const id = msg.readUInt16BE(0);
    const flags = msg.readUInt16BE(2);
    // a response: answering it could start two servers answering each other forever
    if (flags & QR) return undefined;
    const bare = (rcode: number) =>
      dnsPacket.encode({ type: 'response', id, flags: (flags & (OPCODE_MASK | RD)) | RA | rcode });
    try {
      if (flags & OPCODE_MASK) return bare(NOTIMP); // only QUERY: no NOTIFY, UPDATE, IQUERY, STATUS
      let query: DecodedPacket;
      try {
        query = dnsPacket.decode(msg);
      } catch {
        return bare(FORMERR);
      }
      const q = query.questions?.length === 1 ? query.questions[0] : undefined;
      if (!q) return bare(FORMERR);
      if (q.class !== 'IN' && q.class !== 'ANY') return bare(REFUSED); // no CHAOS or Hesiod here

      const reply = (rcode: number, answers: Answer[] = []) => {
        const packet = { type: 'response' as const, id, questions: [q], answers, flags: (flags & RD) | RA | AA | rcode };
        const out = dnsPacket.encode(packet);
        // only a huge asked name can push an answer past 512 bytes: say so, and the client asks over TCP
        if (tcp || out.length <= UDP_MAX) return out;
        return dnsPacket.encode({ ...packet, answers: [], flags: packet.flags | TC });
      };

      const name = q.name.toLowerCase().replace(/\.$/, '');
      const inZone = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : name;
      // only bare names are instances': a dotted name (an instance called registry.npmjs.org)
      // must not take over a public host for its neighbours
      const address = inZone.includes('.') ? undefined : this.lookup(inZone);
      if (address !== undefined) {
        if (q.type === 'A' || (q.type as string) === 'ANY') return reply(NOERROR, [{ type: 'A', name: q.name, ttl: 0, data: address }]);
        // the name exists, without this type (AAAA included): an empty NOERROR sends resolvers to A at once
        return reply(NOERROR);
      }
      // a bare name or one under .unik is ours to deny: it must not leak to the host's resolvers
      if ((name !== '' && !name.includes('.')) || name.endsWith(SUFFIX)) return reply(NXDOMAIN);

      return await this.forward(msg, id, q, tcp, () => bare(SERVFAIL));
    } catch (e) {
      this.warn('internal', `dns: answering a query failed: ${(e as Error).message}`);
      return bare(SERVFAIL);
    }
  }

  private lookup(name: string): string | undefined {
    if (name === '') return undefined;
    const address = this.zone.lookup(name);
    if (address === undefined || isIPv4(address)) return address;
    this.warn(`zone ${name}`, `dns: the address for ${name} is not IPv4: ${address}`);
    return undefined;
  }

  /** Asks the upstreams in turn; their answer is relayed byte for byte under the client's id. */
  private async forward(msg: Buffer, id: number, q: Question, tcp: boolean, servfail: () => Buffer): Promise<Buffer | undefined> {
    if (this.upstreams.length === 0) return servfail();
    if (this.forwards >= MAX_FORWARDS) {
      this.warn('forwards', `dns: ${MAX_FORWARDS} queries already wait on upstreams; dropping more`);
      return undefined;
    }
    this.forwards++;
    try {
      for (const up of this.upstreams) {
        if (this.closed) return undefined;
        let got = await this.askUdp(up, msg, q);
        // a client on TCP came because an answer was too big for UDP: fetch the whole one
        if (got?.truncated && tcp && !this.closed) got = (await this.askTcp(up, msg, q)) ?? got;
        if (this.closed) return undefined;
        if (got) return withId(got.raw, id);
      }
      return servfail();
    } finally {
      this.forwards--;
    }
  }

  private askUdp(up: Upstream, query: Buffer, q: Question): Promise<{ raw: Buffer; truncated: boolean } | undefined> {
    return new Promise((resolve) => {
      const id = randomInt(0, 0x10000); // a fresh id and source port per forward: hard to spoof
      const sock = createSocket(up.family === 6 ? 'udp6' : 'udp4');
      const finish = (got?: { raw: Buffer; truncated: boolean }) => {
        if (!this.pending.delete(finish)) return;
        clearTimeout(timer);
        sock.close();
        resolve(got);
      };
      this.pending.add(finish);
      const timer = setTimeout(() => {
        this.warn(`up ${up.address}`, `dns: upstream ${up.address}:${up.port} did not answer in ${UPSTREAM_TIMEOUT_MS} ms`);
        finish();
      }, UPSTREAM_TIMEOUT_MS);
      // connected, so only the upstream's datagrams arrive, and a closed port fails at once (ICMP)
      sock.on('error', (e) => {
        this.warn(`up ${up.address}`, `dns: upstream ${up.address}:${up.port}: ${e.message}`);
        finish();
      });
      sock.on('message', (m) => {
        const got = upstreamAnswer(m, id, q);
        if (got) finish(got);
      });
      sock.connect(up.port, up.address, () => sock.send(withId(query, id)));
    });
  }

  private askTcp(up: Upstream, query: Buffer, q: Question): Promise<{ raw: Buffer; truncated: boolean } | undefined> {
    return new Promise((resolve) => {
      const id = randomInt(0, 0x10000);
      const sock = connect({ host: up.address, port: up.port });
      const finish = (got?: { raw: Buffer; truncated: boolean }) => {
        if (!this.pending.delete(finish)) return;
        clearTimeout(timer);
        sock.destroy();
        resolve(got);
      };
      this.pending.add(finish);
      const timer = setTimeout(() => finish(), UPSTREAM_TIMEOUT_MS);
      const frames = new FrameReader();
      sock.on('error', () => finish());
      sock.on('close', () => finish());
      sock.on('data', (chunk: Buffer) => {
        for (const m of frames.push(chunk)) {
          const got = upstreamAnswer(m, id, q);
          if (got) finish(got);
        }
      });
      sock.write(framed(withId(query, id)));
    });
  }
}

export async function startDnsServer(o: DnsServerOptions): Promise<DnsServer> {
  const server = new NetworkDns(o.zone, o.log ?? (() => {}));
  await server.start(o);
  return server;
}
