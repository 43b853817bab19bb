// Published ports of a VM on a bridged network, relayed in user space by its supervisor (as
// Docker's docker-proxy and podman's rootlessport do): it works for 127.0.0.1 as for any host
// address with no kernel NAT to set up or leak, and it ends with the VM, since its supervisor
// does. Hand-written because it is a few socket pipes; no library does just this.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface ProxyRule {
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  guestIp: string;
  guestPort: number;
}

/** a UDP peer's relay is dropped after this long without a datagram either way */
const UDP_IDLE_MS = 60_000;
/** at most this many UDP peers at once; beyond, new ones are dropped */
const UDP_MAX_PEERS = 1024;
/** a UDP peer the guest never answered is dropped after this long (spoofed sources fill no table) */
const UDP_UNANSWERED_MS = 5_000;
/** TCP connections relayed at once per published port; beyond, new ones are refused */
const TCP_MAX_CONNECTIONS = 1024;

export interface Proxies {
  close(): void;
}

/** Listens on every rule's host address; rejects (closing what it opened) if one cannot be had. */
export async function startProxies(rules: ProxyRule[]): Promise<Proxies> {
  const closers: (() => void)[] = [];
  const close = () => closers.forEach((c) => c());
  try {
    for (const r of rules) closers.push(r.protocol === 'tcp' ? await tcpProxy(r) : await udpProxy(r));
  } catch (e) {
    close();
    throw e;
  }
  return { close };
}

function tcpProxy(r: ProxyRule): Promise<() => void> {
  const open = new Set<Socket>();
  // half-open both ways: a client that ends its request still gets the whole answer
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const guest = connect({ host: r.guestIp, port: r.guestPort, allowHalfOpen: true });
    for (const s of [client, guest]) {
      open.add(s);
      s.setNoDelay(true);
      s.on('error', () => {
        client.destroy();
        guest.destroy();
      });
      s.on('close', () => open.delete(s));
    }
    client.pipe(guest);
    guest.pipe(client);
  });
  server.maxConnections = TCP_MAX_CONNECTIONS;
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${r.hostIp}:${r.hostPort}/tcp: ${e.code ?? e.message}`)));
    server.listen({ host: r.hostIp, port: r.hostPort, exclusive: true }, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      resolve(() => {
        server.close();
        for (const s of open) s.destroy();
      });
    });
  });
}

function udpProxy(r: ProxyRule): Promise<() => void> {
  const front = createSocket('udp4');
  const peers = new Map<string, { sock: UdpSocket; answered: boolean; timer: NodeJS.Timeout }>();
  const drop = (key: string) => {
    const p = peers.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    p.sock.close();
    peers.delete(key);
  };
  front.on('message', (msg, from) => {
    // a forged source port 0 can never be answered (and sending to it throws)
    if (from.port === 0) return;
    const key = `${from.address}:${from.port}`;
    let peer = peers.get(key);
    if (!peer) {
      if (peers.size >= UDP_MAX_PEERS) return;
      const sock = createSocket('udp4');
      // until the guest answers, a short life: a flood of spoofed sources cannot fill the table
      const p = { sock, answered: false, timer: setTimeout(() => drop(key), UDP_UNANSWERED_MS) };
      sock.on('error', () => drop(key));
      // answers from the guest go back to this peer, from the published address
      sock.on('message', (answer, src) => {
        if (src.address !== r.guestIp || src.port !== r.guestPort) return;
        try {
          front.send(answer, from.port, from.address);
        } catch {
          return;
        }
        if (!p.answered) {
          p.answered = true;
          clearTimeout(p.timer);
          p.timer = setTimeout(() => drop(key), UDP_IDLE_MS);
        } else p.timer.refresh();
      });
      peers.set(key, (peer = p));
    } else if (peer.answered) peer.timer.refresh();
    peer.sock.send(msg, r.guestPort, r.guestIp);
  });
  return new Promise((resolve, reject) => {
    front.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${r.hostIp}:${r.hostPort}/udp: ${e.code ?? e.message}`)));
    front.bind({ address: r.hostIp, port: r.hostPort, exclusive: true }, () => {
      front.removeAllListeners('error');
      front.on('error', () => undefined);
      resolve(() => {
        for (const k of [...peers.keys()]) drop(k);
        front.close();
      });
    });
  });
}
