import { invalid } from '../model/errors.js';
import type { PortForward } from '../model/types.js';

/** Parses "[HOSTIP:]HOSTPORT:GUESTPORT[/tcp|udp]" (the docker -p form). */
export function parsePort(spec: string): PortForward {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(spec.trim());
  if (!m) throw invalid('BAD_PORT', `bad port mapping ${JSON.stringify(spec)}`, 'use HOSTPORT:GUESTPORT, e.g. -p 8080:8080 (optionally IP:HOSTPORT:GUESTPORT and /udp)');
  const hostPort = Number(m[2]);
  const guestPort = Number(m[3]);
  for (const p of [hostPort, guestPort]) if (p < 1 || p > 65535) throw invalid('BAD_PORT', `port ${p} is out of range (1-65535)`);
  return { hostIp: m[1] ?? '127.0.0.1', hostPort, guestPort, protocol: (m[4] as 'tcp' | 'udp') ?? 'tcp' };
}

