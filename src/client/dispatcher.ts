import type { Agent } from 'undici';

// Node 20's fetch is undici 6; the package of the same major provides its Agent class. Loading
// the package costs ~100 ms of CPU here, so it is imported only by the calls that need an Agent.

/** Client TLS material: the CA that signed the daemon's certificate, and ours for --tlsverify. */
export interface ClientTls {
  /** replaces the trusted CAs, as Node's `ca` does (several PEMs may be given) */
  ca?: Buffer | (string | Buffer)[];
  cert?: Buffer;
  key?: Buffer;
}

/** the shared agent of plain-HTTP patient calls; a client with TLS material gets its own */
const plain: { patient?: Promise<Agent> } = {};

/**
 * The fetch dispatcher for a call. `patient` drops undici's 300 s header/body timeouts, for calls
 * that legitimately stay quiet for minutes: a synchronous build (no headers until the kernel is
 * compiled) and `logs --follow` on a silent instance. With TLS material, connections present it.
 * Undefined (the global dispatcher) for a quick plain call: no undici to load.
 */
export function dispatcherFor(patient: boolean, tls?: ClientTls): Promise<Agent> | undefined {
  if (!patient && !tls) return undefined;
  const make = async () => {
    const { Agent } = await import('undici');
    return new Agent({
      ...(patient ? { headersTimeout: 0, bodyTimeout: 0 } : {}),
      ...(tls ? { connect: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } } : {}),
    });
  };
  if (tls) return make();
  return (plain.patient ??= make());
}
