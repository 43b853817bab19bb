// TLS for the CLI, as the Docker CLI does it: --tls (HTTPS, the daemon's certificate checked
// against --tlscacert or the system CAs), --tlsverify (also present our certificate), and
// UNIK_TLS_VERIFY / UNIK_CERT_PATH (a folder with ca.pem, cert.pem, key.pem) from the environment.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientTls } from '../client/dispatcher.js';
import { CliError } from './errors.js';

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
