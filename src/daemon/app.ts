import Fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { timingSafeEqual } from 'node:crypto';
import type { Core } from '../core/core.js';
import { errorHandler } from './http/errors.js';
import { imageRoutes } from './unik/images.js';
import { instanceRoutes } from './unik/instances.js';
import { systemRoutes } from './unik/system.js';
import { volumeRoutes } from './unik/volumes.js';
import { hubRoutes } from './unik/hub.js';
import { DOCKER_PREFIX, dockerApi, rewriteDockerUrl } from './docker/index.js';
import { handleAttach } from './docker/attach.js';

export interface AppOptions {
  core: Core;
  /** unik's version, reported by the Docker API */
  version?: string;
  /** when set, every request must carry "Authorization: Bearer <token>" */
  token?: string;
  logger?: boolean;
}

/** Builds the daemon's HTTP app without listening (tests use inject or listen on port 0). */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ? { level: process.env.UNIK_LOG_LEVEL || 'info' } : false,
    bodyLimit: 8 * 1024 * 1024,
    // a follow stream or a long build must not be cut by a server timeout
    requestTimeout: 0,
    forceCloseConnections: true,
    return503OnClosing: true,
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
  if (opts.token) {
    const want = Buffer.from(`Bearer ${opts.token}`);
    app.addHook('onRequest', async (req, reply) => {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== want.length || !timingSafeEqual(got, want))
        return reply.code(401).send({ message: 'missing or wrong API token', code: 'UNIK_ERR_UNAUTHORIZED', hint: 'set UNIK_API_TOKEN to the token the daemon was started with' });
    });
  }
  await app.register(multipart, { limits: { fileSize: 8 * 1024 * 1024 * 1024, files: 1, fields: 32 } });
  systemRoutes(app, opts.core);
  imageRoutes(app, opts.core);
  instanceRoutes(app, opts.core);
  volumeRoutes(app, opts.core);
  hubRoutes(app, opts.core);
  const version = opts.version ?? '0.0.0';
  await app.register(dockerApi, { prefix: DOCKER_PREFIX, core: opts.core, version, unversioned: false });
  await app.register(dockerApi, { core: opts.core, version, unversioned: true });
  // docker attach is an HTTP upgrade; nothing else upgrades
  app.server.on('upgrade', (req, socket) => {
    if (!handleAttach(opts.core, req, socket)) socket.destroy();
  });
  return app;
}
