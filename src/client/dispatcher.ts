import { Agent } from 'undici';

// Node 20's fetch is undici 6; the package of the same major provides its Agent class.

/** Client TLS material: the CA that signed the daemon's certificate, and ours for --tlsverify. */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const cache = new Map<string, Agent>();

/**
 * The fetch dispatcher for a call. `patient` drops undici's 300 s header/body timeouts, for calls
 * that legitimately stay quiet for minutes: a synchronous build (no headers until the kernel is
 * compiled) and `logs --follow` on a silent instance. With TLS material, connections present it.
 */
export function dispatcherFor(patient: boolean, tls?: ClientTls): Agent | undefined {
  if (!patient && !tls) return undefined;
  const key = `${patient}`;
  const hit = tls ? undefined : cache.get(key);
  if (hit) return hit;
  const agent = new Agent({
    ...(patient ? { headersTimeout: 0, bodyTimeout: 0 } : {}),
    ...(tls ? { connect: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } } : {}),
  });
  if (!tls) cache.set(key, agent);
  return agent;
}
