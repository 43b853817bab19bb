import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { conflict, invalid } from '../../model/errors.js';
import type { PortForward } from '../../model/types.js';

/** Fails fast, with a clear message, when a host port is already taken. */
export async function checkPortsFree(ports: PortForward[]): Promise<void> {
  const seen = new Set<string>();
  for (const p of ports) {
    const key = `${p.protocol}:${p.hostIp}:${p.hostPort}`;
    if (seen.has(key)) throw invalid('DUPLICATE_PORT', `host port ${p.hostPort}/${p.protocol} is mapped twice`);
    seen.add(key);
    const err = await (p.protocol === 'tcp' ? tryTcp(p) : tryUdp(p));
    if (err === 'EADDRINUSE')
      throw conflict('PORT_IN_USE', `port ${p.hostPort}/${p.protocol} on ${p.hostIp} is already in use`, 'pick another host port with -p HOSTPORT:GUESTPORT, or stop what holds it');
    if (err) throw invalid('PORT_UNUSABLE', `cannot listen on ${p.hostIp}:${p.hostPort}/${p.protocol}: ${err}`);
  }
}

function tryTcp(p: PortForward): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.listen({ port: p.hostPort, host: p.hostIp, exclusive: true }, () => s.close(() => resolve(null)));
  });
}

function tryUdp(p: PortForward): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.bind(p.hostPort, p.hostIp, () => s.close(() => resolve(null)));
  });
}
