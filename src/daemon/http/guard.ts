import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ErrorJson } from '../../api/types.js';

// One check for every request, plain routes and HTTP upgrades alike (docker attach), run before
// anything is parsed or routed:
// - Origin: a web page the user opens may send "simple" cross-origin requests (form posts,
//   no-cors fetches, <img> GETs) to a loopback port. Browsers mark them with Origin and
//   Sec-Fetch-Site; anything not from the daemon's own origin is refused. Non-browser clients
//   (the CLI, docker, curl) send neither and pass.
// - Host: DNS rebinding points an attacker's name at 127.0.0.1, so the page becomes "same
//   origin" with the daemon; its requests still carry the attacker's name in Host. Only IP
//   literals, localhost names and names the operator allowed are served.
// - Authentication: the API token (when configured) and, with --tls-verify, a client certificate
//   the TLS layer already verified. The dashboard's static files (/ui, src/daemon/dashboard.ts)
//   need no token, since a browser cannot send one when it opens a page; every call the page
//   then makes does.

export interface GuardOptions {
  /** when set, every request must carry "Authorization: Bearer <token>" */
  token?: string | undefined;
  /** extra host names the daemon answers to (--allowed-host, UNIK_ALLOWED_HOSTS) */
  allowedHosts?: string[];
  /** with --tls-verify: a request must come over a connection with a verified client certificate */
  requireClientCert?: boolean;
  /**
   * requests that need no token: GETs of the dashboard's static files, which a browser's address
   * bar cannot send one with (the page then sends it on its own calls). Host, Origin and client
   * certificates are checked as for any request.
   */
  tokenFree?: (method: string, url: string) => boolean;
}

export interface Refusal {
  status: number;
  body: ErrorJson;
}

export interface GuardedRequest {
  headers: IncomingHttpHeaders;
  socket: unknown;
  method?: string | undefined;
  url?: string | undefined;
}

export function makeGuard(opts: GuardOptions): (req: GuardedRequest) => Refusal | undefined {
  const want = opts.token ? Buffer.from(`Bearer ${opts.token}`) : undefined;
  const names = new Set((opts.allowedHosts ?? []).map((h) => h.toLowerCase()));
  return (req) => {
    const host = hostName(req.headers.host);
    if (host === null || (host !== undefined && !servedHost(host, names)))
      return refuse(403, 'UNIK_ERR_FORBIDDEN_HOST', `requests for host ${JSON.stringify(String(req.headers.host))} are refused: the daemon answers to IP addresses, localhost and the names it was told`, 'call the daemon by its IP address, or start it with --allowed-host NAME (UNIK_ALLOWED_HOSTS)');
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req.headers.host, isTls(req.socket)))
      return refuse(403, 'UNIK_ERR_FORBIDDEN_ORIGIN', `cross-origin requests are refused (Origin ${JSON.stringify(origin)})`, 'web pages cannot drive the daemon; use the unik CLI, the Docker CLI or an API client');
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      return refuse(403, 'UNIK_ERR_FORBIDDEN_ORIGIN', `cross-site requests are refused (Sec-Fetch-Site: ${String(site)})`, 'web pages cannot drive the daemon; use the unik CLI, the Docker CLI or an API client');
    if (opts.requireClientCert && !(isTls(req.socket) && (req.socket as TLSSocket).authorized))
      return refuse(401, 'UNIK_ERR_UNAUTHORIZED', 'a client certificate signed by the daemon\'s CA is required', 'pass --tlscacert/--tlscert/--tlskey (or set UNIK_CERT_PATH / DOCKER_CERT_PATH)');
    if (want && !opts.tokenFree?.(req.method ?? '', req.url ?? '')) {
      const got = Buffer.from(String(req.headers.authorization ?? ''));
      if (got.length !== want.length || !timingSafeEqual(got, want))
        return refuse(401, 'UNIK_ERR_UNAUTHORIZED', 'missing or wrong API token', 'set UNIK_API_TOKEN to the token the daemon was started with');
    }
    return undefined;
  };
}

function refuse(status: number, code: string, message: string, hint: string): Refusal {
  return { status, body: { message, code, hint } };
}

function isTls(socket: unknown): boolean {
  return !!(socket as TLSSocket | undefined)?.encrypted;
}

/** The host name of a Host header, lower-cased, without port or brackets; undefined when absent, null when malformed. */
export function hostName(header: string | undefined): string | undefined | null {
  if (header === undefined) return undefined; // HTTP/1.0 clients; browsers always send Host
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/@]+)(?::(\d{1,5}))?$/.exec(header);
  if (!m) return null;
  return m[1]!.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

/** IP literals cannot be rebound; localhost names resolve to loopback without DNS (RFC 6761). */
function servedHost(host: string, allowed: Set<string>): boolean {
  if (isIP(host)) return true;
  const name = host.replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost') || allowed.has(name);
}

/** An Origin names the daemon itself when scheme, host and port are the ones this request was sent to. */
function sameOrigin(origin: string | string[], host: string | undefined, tls: boolean): boolean {
  if (typeof origin !== 'string' || !host || origin === 'null') return false;
  try {
    const o = new URL(origin);
    const self = new URL(`${tls ? 'https' : 'http'}://${host}`);
    return o.origin === self.origin;
  } catch {
    return false;
  }
}
