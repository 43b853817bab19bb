// What the buildpack's scripts and the launcher share: where the unik daemon is and how to
// reach it (from the app's environment or a bound service), and how names are made from what
// Cloud Foundry says about the app. Everything here reads the environment as hostile: names are
// cut down to the daemon's alphabet, addresses are parsed, and nothing is ever handed to a shell.
import { isIP } from 'node:net';
import { UnikClient, normalizeBaseUrl } from '../../../src/client/index.js';
import { clientTls } from '../../../src/cli/tls.js';

export type Env = Record<string, string | undefined>;

/** A failure the user can act on: its message (and hint) is what the staging log or the app log shows. */
export class BuildpackError extends Error {
  override readonly name = 'BuildpackError';
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

/** The daemon that builds and runs the app, and what to present to it. */
export interface DaemonRef {
  /** http(s)://HOST:PORT, nothing else */
  address: string;
  token: string | undefined;
  /** a PEM CA from the bound service, for a daemon whose certificate no system CA signed */
  ca: string | undefined;
  /** where the address came from, for the log */
  source: string;
}

interface Binding {
  name: string;
  host: string | undefined;
  token: string | undefined;
  ca: string | undefined;
}

const HINT = 'set UNIK_HOST (cf set-env APP UNIK_HOST HOST:PORT, and UNIK_API_TOKEN), or bind a service named or tagged "unik" whose credentials are {"host": "HOST:PORT", "api_token": "…"}';

interface Service {
  name?: unknown;
  label?: unknown;
  tags?: unknown;
  credentials?: unknown;
}

/** A service in VCAP_SERVICES that names a unik daemon: its name, label or one of its tags is "unik" (for a user-provided service: its name). */
function isUnikService(s: unknown): s is Service {
  if (typeof s !== 'object' || s === null) return false;
  const svc = s as Service;
  return svc.name === 'unik' || svc.label === 'unik' || (Array.isArray(svc.tags) && svc.tags.includes('unik'));
}

function services(env: Env): Record<string, unknown> | undefined {
  if (!env.VCAP_SERVICES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(env.VCAP_SERVICES);
  } catch {
    throw new BuildpackError('VCAP_SERVICES is not JSON');
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}

function boundDaemon(env: Env): Binding | undefined {
  for (const list of Object.values(services(env) ?? {})) {
    const svc = Array.isArray(list) ? (list as unknown[]).find(isUnikService) : undefined;
    if (!svc) continue;
    const c = (typeof svc.credentials === 'object' && svc.credentials !== null ? svc.credentials : {}) as Record<string, unknown>;
    const str = (k: string) => (typeof c[k] === 'string' && c[k] ? (c[k] as string) : undefined);
    return { name: typeof svc.name === 'string' ? svc.name : 'unik', host: str('host'), token: str('api_token'), ca: str('ca') };
  }
  return undefined;
}

/** VCAP_SERVICES without the unik binding: the app in the unikernel gets its services, not the daemon's credentials. */
export function servicesForGuest(env: Env): string | undefined {
  const all = services(env);
  if (!all) return env.VCAP_SERVICES;
  const kept = Object.entries(all)
    .map(([label, list]) => [label, Array.isArray(list) ? list.filter((s) => !isUnikService(s)) : list] as const)
    .filter(([, list]) => !Array.isArray(list) || list.length > 0);
  return JSON.stringify(Object.fromEntries(kept));
}

/** HOST:PORT or http(s)://HOST:PORT, and nothing more: no user or password, path, query or fragment. */
export function checkAddress(raw: string): string {
  let url: URL;
  try {
    url = new URL(normalizeBaseUrl(raw.trim()));
  } catch {
    throw new BuildpackError(`the unik daemon address ${JSON.stringify(raw.slice(0, 200))} is not HOST:PORT or a URL`, HINT);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BuildpackError(`the unik daemon address must be http or https, not ${url.protocol}`, HINT);
  if (url.username || url.password) throw new BuildpackError('the unik daemon address carries a user or password', 'give the token as UNIK_API_TOKEN or the service\'s "api_token", never in the address');
  if (url.pathname !== '/' || url.search || url.hash) throw new BuildpackError(`the unik daemon address ${JSON.stringify(raw.slice(0, 200))} has a path or query`, 'give HOST:PORT');
  return `${url.protocol}//${url.host}`;
}

/**
 * Where the daemon is: `recorded` (the daemon a droplet's image was built on) if given, else
 * UNIK_HOST, else a bound "unik" service. The token: UNIK_API_TOKEN, else the service's
 * "api_token". Both are read from the environment each time and never written anywhere.
 */
export function daemonFrom(env: Env, recorded?: string): DaemonRef {
  const bound = boundDaemon(env);
  const raw = recorded ?? env.UNIK_HOST ?? bound?.host;
  if (!raw) throw new BuildpackError(bound ? `the bound service "${bound.name}" has no credentials.host` : 'no unik daemon is configured for this app', HINT);
  const source = recorded ? 'the droplet (the daemon its image was built on)' : env.UNIK_HOST ? 'UNIK_HOST' : `the bound service "${bound!.name}"`;
  return { address: checkAddress(raw), token: env.UNIK_API_TOKEN || bound?.token, ca: bound?.ca, source };
}

/** A client for the daemon: TLS from UNIK_TLS / UNIK_CERT_PATH as the CLI reads them, plus the service's CA. */
export function clientFor(d: DaemonRef, env: Env): UnikClient {
  let tls = clientTls({}, env);
  if (d.ca) tls = { ...tls, ca: Buffer.from(d.ca) };
  const url = tls && d.address.startsWith('http://') ? `https://${d.address.slice('http://'.length)}` : d.address;
  return new UnikClient(url, { token: d.token, tls });
}

/** The host part of a daemon address, without brackets. */
export function daemonHostName(address: string): string {
  return new URL(address).hostname.replace(/^\[|\]$/g, '');
}

/** Where the daemon publishes the app's port: an IPv4 address of its host the instance can reach. */
export function publishAddress(env: Env, daemonAddress: string): { bind: string; connect: string } {
  const host = daemonHostName(daemonAddress);
  const wanted = env.UNIK_PUBLISH_IP;
  if (wanted !== undefined && isIP(wanted) !== 4) throw new BuildpackError(`UNIK_PUBLISH_IP ${JSON.stringify(wanted.slice(0, 100))} is not an IPv4 address`);
  const bind = wanted ?? (host === 'localhost' ? '127.0.0.1' : isIP(host) === 4 ? host : '0.0.0.0');
  return { bind, connect: bind === '0.0.0.0' ? host : bind };
}

/** The app's name from VCAP_APPLICATION (application_name, else name); "app" when there is none. */
export function appName(env: Env): string {
  try {
    const v = JSON.parse(env.VCAP_APPLICATION ?? '') as { application_name?: unknown; name?: unknown };
    const name = typeof v.application_name === 'string' ? v.application_name : v.name;
    if (typeof name === 'string' && name) return name;
  } catch {
    // not JSON: the app gets the default name, which is said in the log
  }
  return 'app';
}

/**
 * A string cut down to the daemon's name alphabet (letters, digits, "_", "." and "-", starting
 * with a letter or digit): every other run of characters becomes one "-".
 */
export function safeName(s: string, max: number, fallback = 'app'): string {
  const cut = s.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, max).replace(/[^A-Za-z0-9]+$/, '');
  return cut || fallback;
}

/** APP-DIGEST: one image per app and source; the same source staged again finds its image. */
export function imageName(app: string, digest: string): string {
  return `${safeName(app, 100)}-${digest.slice(0, 12)}`;
}

/** cf-APP-INSTANCE_GUID: one unikernel per Cloud Foundry app instance. */
export function instanceName(app: string, guid: string): string {
  return `cf-${safeName(app, 60)}-${safeName(guid, 60, 'instance')}`;
}

/** The message of an error, with the daemon's hint when it gave one. */
export function explain(e: unknown): string {
  const err = e as { message?: unknown; hint?: unknown };
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  return typeof err?.hint === 'string' && err.hint ? `${msg} (${err.hint})` : msg;
}
