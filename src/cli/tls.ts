// TLS for the CLI, as the Docker CLI does it: --tls (HTTPS, the daemon's certificate checked
// against --tlscacert or the system CAs), --tlsverify (also present our certificate), and
// UNIK_TLS_VERIFY / UNIK_CERT_PATH (a folder with ca.pem, cert.pem, key.pem) from the environment.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { ClientTls } from '../client/dispatcher.js';
import { CliError } from './errors.js';

/** where bin/unik puts NODE_EXTRA_CA_CERTS so that Node does not load it at start-up */
export const DEFERRED_CA_VAR = 'UNIK_NODE_EXTRA_CA_CERTS';

/** the extra CA file Node was not given at start-up: trusted here for https instead */
let deferredCa: string | undefined;

/**
 * Takes the variable bin/unik set back into NODE_EXTRA_CA_CERTS, so that programs the CLI starts
 * see what the user set, and remembers the file for connections to an https daemon.
 */
export function takeDeferredCa(env: Env = process.env): void {
  const file = env[DEFERRED_CA_VAR];
  delete env[DEFERRED_CA_VAR];
  if (!file) return;
  env.NODE_EXTRA_CA_CERTS = file;
  deferredCa = file;
}

/**
 * What Node would have trusted had it loaded NODE_EXTRA_CA_CERTS itself: its bundled roots plus
 * the file's certificates, unless `ca` is given (which replaces both, as in Node). Undefined
 * when nothing changes: plain HTTP, no deferred file, or a `ca` of the user's.
 */
export function withDeferredCa(url: string, tls: ClientTls | undefined): ClientTls | undefined {
  if (!deferredCa || !/^https:/i.test(url) || tls?.ca) return undefined;
  let extra: string;
  try {
    extra = readFileSync(deferredCa, 'utf8');
  } catch (e) {
    // Node's own words when it cannot load the file at start-up; it goes on without it
    process.stderr.write(`Warning: Ignoring extra certs from \`${deferredCa}\`, load failed: ${(e as Error).message}\n`);
    return undefined;
  }
  // node:tls only when it is used (this module loads for every command)
  const { rootCertificates } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  return { ...tls, ca: [...rootCertificates, extra] };
}

export interface TlsFlags {
  tls?: boolean;
  tlsverify?: boolean;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
}

type Env = Record<string, string | undefined>;

const on = (v: string | undefined) => !!v && v !== '0' && v.toLowerCase() !== 'false';

/** The TLS material to use, or undefined for plain HTTP. */
export function clientTls(flags: TlsFlags, env: Env = process.env): ClientTls | undefined {
  const verify = flags.tlsverify || on(env.UNIK_TLS_VERIFY);
  const certPath = env.UNIK_CERT_PATH;
  const fromPath = (name: string) => (certPath && existsSync(join(certPath, name)) ? join(certPath, name) : undefined);
  const ca = flags.tlscacert ?? fromPath('ca.pem');
  const cert = flags.tlscert ?? (verify ? fromPath('cert.pem') : undefined);
  const key = flags.tlskey ?? (verify ? fromPath('key.pem') : undefined);
  if (!verify && !flags.tls && !on(env.UNIK_TLS) && !flags.tlscacert && !certPath) return undefined;
  if (verify && (!cert || !key))
    throw new CliError('--tlsverify needs a client certificate and key', 'pass --tlscert and --tlskey, or set UNIK_CERT_PATH to a folder with cert.pem and key.pem');
  const read = (p: string | undefined, what: string) => {
    if (!p) return undefined;
    try {
      return readFileSync(p);
    } catch (e) {
      throw new CliError(`cannot read the ${what} ${p}: ${(e as Error).message}`);
    }
  };
  const out: ClientTls = {};
  const caPem = read(ca, 'CA certificate');
  const certPem = read(cert, 'client certificate');
  const keyPem = read(key, 'client key');
  if (caPem) out.ca = caPem;
  if (certPem) out.cert = certPem;
  if (keyPem) out.key = keyPem;
  return out;
}
