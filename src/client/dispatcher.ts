import { Agent } from 'undici';

// Node 20's fetch is undici 6; the package of the same major provides its Agent class.

/** Client TLS material: the CA that signed the daemon's certificate, and ours for --tlsverify. */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** the shared agents of plain-HTTP clients; a client with TLS material gets its own */
const plain: { patient?: Agent } = {};

/**
 * The fetch dispatcher for a call. `patient` drops undici's 300 s header/body timeouts, for calls
 * that legitimately stay quiet for minutes: a synchronous build (no headers until the kernel is
 * compiled) and `logs --follow` on a silent instance. With TLS material, connections present it.
 */
export function dispatcherFor(patient: boolean, tls?: ClientTls): Agent | undefined {
  if (!patient && !tls) return undefined;
  const make = () =>
    new Agent({
      ...(patient ? { headersTimeout: 0, bodyTimeout: 0 } : {}),
      ...(tls ? { connect: { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } } : {}),
    });
  if (tls) return make();
  return (plain.patient ??= make());
}
