import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { containerRoutes } from './containers.js';
import { dockerErrorHandler } from './errors.js';
import { eventRoutes } from './events.js';
import { imageRoutes } from './images.js';
import { networkRoutes } from './networks.js';
import { API_VERSION, systemRoutes } from './system.js';
import { volumeRoutes } from './volumes.js';

/** Versioned Docker paths (/v1.43/…) are rewritten into this namespace (see app.ts). */
export const DOCKER_PREFIX = '/_docker';

const VERSIONED = /^\/v\d+(?:\.\d+)?(?=\/)/;

/** /v1.43/containers/json → /_docker/containers/json; other URLs unchanged. */
export function rewriteDockerUrl(url: string): string {
  return VERSIONED.test(url) ? url.replace(VERSIONED, DOCKER_PREFIX) : url;
}

/**
 * The Docker Engine API, registered twice: under /_docker (every versioned path, as the docker
 * CLI sends them) and at the root for the unversioned paths dockerode sends, except where they
 * collide with the 2016 API (GET/POST/DELETE /volumes…, DELETE /images/:name), which keeps them.
 * Networks were not in the 2016 API: their routes are at both roots.
 */
export async function dockerApi(app: FastifyInstance, opts: { core: Core; version: string; unversioned: boolean }): Promise<void> {
  const { core, version, unversioned } = opts;
  app.setErrorHandler(dockerErrorHandler);
  app.addHook('onSend', async (_req, reply) => {
    reply.header('Api-Version', API_VERSION);
    reply.header('Server', `unik/${version}`);
    // the docker CLI decodes an error body only when the type is exactly application/json
    if (String(reply.getHeader('content-type') ?? '').startsWith('application/json')) reply.header('content-type', 'application/json');
  });
  systemRoutes(app, core, version);
  imageRoutes(app, core, { unversioned });
  containerRoutes(app, core);
  // not in the 2016 API: served at both roots. `docker inspect NAME` tries containers, images,
  // then networks and more: an unknown network is a 404 "network NAME not found", so the CLI
  // goes on to the next kind and finally says "No such object"
  networkRoutes(app, core);
  app.get<{ Params: { id: string } }>('/plugins/:id/json', async (req, reply) => reply.code(404).send({ message: `plugin ${req.params.id} not found` }));
  if (!unversioned) {
    volumeRoutes(app, core);
    // unversioned GET /events is unik's own (PascalCase), as for /volumes
    eventRoutes(app, core);
    app.setNotFoundHandler((req, reply) => {
      const path = req.url.replace(DOCKER_PREFIX, '');
      // 501 says "Docker has this, unik does not (yet)"; anything else is the client's mistake
      if (!isDockerApiCall(req.method, path)) return void reply.code(404).send({ message: `page not found: ${req.method} ${path.split('?')[0]} is not a Docker API call` });
      void reply.code(501).send({ message: `unik does not support ${req.method} ${path} of the Docker API` });
    });
  }
}

/** The Docker Engine API's top-level resources (docs.docker.com/engine/api), and its methods. */
const DOCKER_RESOURCES = new Set(['containers', 'images', 'networks', 'volumes', 'exec', 'swarm', 'nodes', 'services', 'tasks', 'secrets', 'configs', 'plugins', 'system', 'events', 'auth', 'build', 'commit', 'session', 'distribution', 'grpc']);
const DOCKER_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE']);

function isDockerApiCall(method: string, path: string): boolean {
  const resource = /^\/([^/?]+)/.exec(path)?.[1];
  return DOCKER_METHODS.has(method) && resource !== undefined && DOCKER_RESOURCES.has(resource);
}
