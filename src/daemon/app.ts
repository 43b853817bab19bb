import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import type { Core } from '../core/core.js';
import { errorHandler } from './http/errors.js';
import { makeGuard, type Refusal } from './http/guard.js';
import { isLoopbackAddress, loopbackPeerUid } from './http/peer-uid.js';
import { imageRoutes } from './unik/images.js';
import { instanceRoutes } from './unik/instances.js';
import { systemRoutes } from './unik/system.js';
import { volumeRoutes } from './unik/volumes.js';
import { hubRoutes } from './unik/hub.js';
import { monitoringRoutes } from './unik/monitoring.js';
import { DOCKER_PREFIX, dockerApi, rewriteDockerUrl } from './docker/index.js';
import { handleAttach } from './docker/attach.js';
import { dashboardRoutes, loadDashboard } from './dashboard.js';

/** 2016 routes whose clients send a JSON body (or `null`) without a Content-Type */
const LEGACY_JSON_ROUTES = new Set(['/instances/run', '/instances/:id/start', '/instances/:id/stop', '/images/push/:name', '/images/pull/:name', '/volumes/:name/attach/:instance', '/volumes/:name/detach']);

export interface AppOptions {
  core: Core;
  /** unik's version, reported by the Docker API */
  version?: string;
  /** when set, every request must carry "Authorization: Bearer <token>" */
  token?: string;
  /** host names the daemon answers to beside IP literals and localhost (DNS rebinding guard) */
  allowedHosts?: string[];
  /** serve HTTPS; with ca, clients must present a certificate it signed (Docker's --tlsverify) */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer };
  /** loopback connections owned by these uids are closed at once (guests' QEMU, builds) */
  refusePeerUids?: number[];
  logger?: boolean;
}

/** Builds the daemon's HTTP app without listening (tests use inject or listen on port 0). */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // a client certificate is asked for, and checked per request by the guard, so that a
    // missing one gets a JSON 401 rather than a failed handshake
    ...(opts.tls ? { https: { key: opts.tls.key, cert: opts.tls.cert, ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false } : {}) } } : {}),
    logger: opts.logger ? { level: process.env.UNIK_LOG_LEVEL || 'info' } : false,
    bodyLimit: 8 * 1024 * 1024,
    // a follow stream or a long build must not be cut by a server timeout
    requestTimeout: 0,
    forceCloseConnections: true,
    return503OnClosing: true,
    // names may be 128 characters (checkName); ids 64; Fastify's default cut is 100
    routerOptions: { maxParamLength: 1024 },
    // the Docker CLI's versioned paths (/v1.43/…) go to the Docker routes' own namespace
    rewriteUrl: (req) => rewriteDockerUrl(req.url ?? '/'),
    // no type coercion: inside anyOf it rewrites data in branches that then fail (a Docker
    // PortBindings list became an object); every route reads its query strings itself
    ajv: { customOptions: { coerceTypes: false } },
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ message: `unknown route ${req.method} ${req.url.split('?')[0]}`, code: 'UNIK_ERR_NO_ROUTE' });
  });
  const dashboard = loadDashboard();
  const guard = makeGuard({ token: opts.token, allowedHosts: opts.allowedHosts, requireClientCert: !!opts.tls?.ca, tokenFree: dashboard.isFile });
  // onRequest runs for every route, unknown ones included, before the body is read
  app.addHook('onRequest', async (req, reply) => {
    const no = guard(req.raw);
    if (no) return reply.code(no.status).send(no.body);
    // the 2016 client libraries POST JSON (or `null`) with no Content-Type, and the 2016 daemon
    // read it; only on those routes, and only once the guard has passed (a browser's cross-site
    // "simple" POST never gets this far)
    if (req.method === 'POST' && req.headers['content-type'] === undefined && hasBody(req.headers) && LEGACY_JSON_ROUTES.has(req.routeOptions.url ?? ''))
      req.headers['content-type'] = 'application/json';
  });
  // every answered request, by its route's template (Docker's under /vX.Y), never its raw URL
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url;
    opts.core.metrics.observeRequest(req.method, route === undefined ? '(no route)' : route.replace(/^\/_docker(?=\/)/, '/vX.Y'), reply.statusCode, reply.elapsedTime / 1000);
  });
  await app.register(multipart, { limits: { fileSize: 8 * 1024 * 1024 * 1024, files: 1, fields: 32 } });
  systemRoutes(app, opts.core);
  imageRoutes(app, opts.core);
  instanceRoutes(app, opts.core);
  volumeRoutes(app, opts.core);
  hubRoutes(app, opts.core);
  monitoringRoutes(app, opts.core);
  dashboardRoutes(app, dashboard);
  const version = opts.version ?? '0.0.0';
  await app.register(dockerApi, { prefix: DOCKER_PREFIX, core: opts.core, version, unversioned: false });
  await app.register(dockerApi, { core: opts.core, version, unversioned: true });
  // a guest reaches 127.0.0.1 through QEMU's user network (10.0.2.2); its packets come from
  // the QEMU process, whose account is refused here before a byte is read
  const refused = new Set(opts.refusePeerUids ?? []);
  if (refused.size)
    app.server.on('connection', (socket: Socket) => {
      if (!isLoopbackAddress(socket.remoteAddress)) return;
      const uid = loopbackPeerUid(socket);
      if (uid !== undefined && refused.has(uid)) {
        app.log.warn({ uid, port: socket.remotePort }, 'closed a loopback connection from a VM or build account');
        socket.destroy();
      }
    });
  // upgraded sockets are Fastify's no longer: close them ourselves when the app closes
  const upgraded = new Set<Duplex>();
  app.addHook('onClose', async () => {
    for (const s of upgraded) s.destroy();
  });
  // docker attach is an HTTP upgrade; nothing else upgrades. Upgrades bypass Fastify's hooks,
  // so the same guard runs here first.
  app.server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      const no = guard(req);
      if (no) return void socket.end(rawResponse(no));
      if (!handleAttach(opts.core, req, socket)) socket.destroy();
    } catch (e) {
      // a malformed request line must not take the daemon down
      app.log.warn({ err: e }, 'bad upgrade request');
      socket.destroy();
    }
  });
  return app as unknown as FastifyInstance;
}

/** A request with a body to parse (an empty POST, as the CLI's push sends, has none). */
function hasBody(h: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return Number(h['content-length'] ?? 0) > 0 || h['transfer-encoding'] !== undefined;
}

function rawResponse(r: Refusal): string {
  const body = JSON.stringify(r.body);
  const reason = r.status === 401 ? 'Unauthorized' : 'Forbidden';
  return `HTTP/1.1 ${r.status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
