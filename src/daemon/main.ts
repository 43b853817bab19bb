import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { buildApp } from './app.js';
import { createCore } from '../core/core.js';
import { isUnikError } from '../model/errors.js';
import { UNTRUSTED_USERS, uidsOf } from './http/peer-uid.js';

export interface DaemonOptions {
  port: number;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  /** CA whose certificates clients must present (Docker's --tlsverify) */
  tlsCa?: string;
  allowedHosts?: string[];
  /** the libvirt provider's connection URI */
  libvirtUri?: string;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function fail(message: string, hint: string): never {
  process.stderr.write(`unik: ${message}\nhint: ${hint}\n`);
  process.exit(1);
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    fail(`cannot read the ${what} ${path}: ${(e as Error).message}`, 'give a readable PEM file');
  }
}

/** `unik daemon`: serves the API until SIGINT/SIGTERM. VMs keep running across restarts. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const token = process.env.UNIK_API_TOKEN || undefined;
  if (!!opts.tlsCert !== !!opts.tlsKey) fail('--tls-cert and --tls-key go together', 'give both: the server certificate and its private key');
  if (opts.tlsCa && !opts.tlsCert) fail('--tls-verify needs the daemon to serve TLS', 'give --tls-cert and --tls-key as well');
  // beyond loopback, anyone who reaches the port could run VMs, and a token sent in clear text
  // is anyone's who can see the traffic: both TLS and an authentication are required
  if (!isLoopback(opts.host)) {
    if (!opts.tlsCert)
      fail(`refusing to listen on ${opts.host} without TLS: the API token and the images would cross the network in clear text`, 'give --tls-cert and --tls-key (and --tls-verify --tls-ca CA.pem for client certificates), or listen on 127.0.0.1');
    if (!token && !opts.tlsCa)
      fail(`refusing to listen on ${opts.host} without authentication: anyone who reaches the port could run VMs`, 'set UNIK_API_TOKEN (clients send the same variable), and/or require client certificates with --tls-verify --tls-ca CA.pem');
  }
  const tls = opts.tlsCert
    ? { cert: readPem(opts.tlsCert, 'TLS certificate'), key: readPem(opts.tlsKey!, 'TLS key'), ...(opts.tlsCa ? { ca: readPem(opts.tlsCa, 'client CA') } : {}) }
    : undefined;
  // the machine's own name is not an attacker's to rebind; any other name must be given
  const allowedHosts = [hostname(), ...(opts.allowedHosts ?? []), ...(process.env.UNIK_ALLOWED_HOSTS ?? '').split(',').map((h) => h.trim()).filter(Boolean)];
  // another daemon on this home (HOME_LOCKED), a store too new, a bad UNIK_CACHE_MAX_MB: said plainly
  const core = await createCore({ log: (m) => process.stderr.write(`unik: ${m}\n`), ...(opts.libvirtUri ? { libvirtUri: opts.libvirtUri } : {}) }).catch((e: unknown) => {
    if (!isUnikError(e)) throw e;
    if (e.hint) fail(e.message, e.hint);
    process.stderr.write(`unik: ${e.message}\n`);
    process.exit(1);
  });
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  // a guest reaches 127.0.0.1 through QEMU's user network (10.0.2.2): its QEMU's connections are refused
  const refusePeerUids = uidsOf(UNTRUSTED_USERS);
  const app = await buildApp({ core, token, allowedHosts, refusePeerUids, ...(tls ? { tls } : {}), logger: true, version });
  const shutdown = async () => {
    await app.close();
    core.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  try {
    await app.listen({ port: opts.port, host: opts.host });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? `port ${opts.port} is already in use (another unik daemon?)` : err.message;
    process.stderr.write(`unik: cannot listen on ${opts.host}:${opts.port}: ${why}\n`);
    core.close();
    process.exit(1);
  }
  const scheme = tls ? 'https' : 'http';
  const auth = [token ? 'API token' : '', tls?.ca ? 'client certificates' : ''].filter(Boolean).join(' + ') || 'none (loopback only)';
  const url = `${scheme}://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  process.stderr.write(`unik: daemon listening on ${url} (state in ${core.paths.home}; authentication: ${auth})\nunik: dashboard at ${url}/ui\n`);
}
