import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import type { UnikEvent } from '../../core/events.js';
import { queryStrings } from '../unik/query.js';
import { eventQuery, jsonWithNano, streamEvents, type FilterSubject } from '../http/event-stream.js';

/** The filters Docker's GET /events takes (docs.docker.com/engine/api, SystemEvents). */
export const DOCKER_EVENT_FILTERS = ['config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume'] as const;

/** Docker's events.Message, in its field order; timeNano is added to the JSON text (int64). */
export interface DockerEvent {
  /** the deprecated fields, which Docker still fills for container and image events */
  status?: string;
  id?: string;
  from?: string;
  Type: 'container' | 'image' | 'volume';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
}

/**
 * A unik event as Docker says it: an instance is a container (its id, its attributes: name,
 * image, labels, exitCode on die); an image pulled or pushed is named by its reference, any
 * other image event by sha256:ID; a volume by its name. unik's own actions (an instance's
 * `ready`, an image's `build`) pass as they are: Docker clients show any action.
 */
export function dockerEvent(e: UnikEvent): DockerEvent {
  const attrs = e.attributes;
  const Type = e.type === 'instance' ? 'container' : e.type;
  const ID = e.type === 'image' ? (attrs.ref ?? `sha256:${e.id}`) : e.type === 'volume' ? (attrs.name ?? e.id) : e.id;
  const legacy = Type === 'container' ? { status: e.action, id: ID, ...(attrs.image ? { from: attrs.image } : {}) } : Type === 'image' ? { status: e.action, id: ID } : {};
  return { ...legacy, Type, Action: e.action, Actor: { ID, Attributes: { ...attrs } }, scope: 'local', time: Number(e.timeNano / 1_000_000_000n) };
}

export function dockerEventLine(e: UnikEvent): string {
  return jsonWithNano(dockerEvent(e), 'timeNano', e.timeNano);
}

function dockerSubject(e: UnikEvent): FilterSubject {
  const m = dockerEvent(e);
  return { type: m.Type, action: m.Action, id: m.Actor.ID, attributes: m.Actor.Attributes };
}

/** GET /events: `docker events` (--since, --until, --filter), one JSON message per line. */
export function eventRoutes(app: FastifyInstance, core: Core): void {
  app.get<{ Querystring: { since?: string; until?: string; filters?: string } }>('/events', { schema: { querystring: queryStrings('since', 'until', 'filters') } }, async (req, reply) => {
    const q = eventQuery(req.query, DOCKER_EVENT_FILTERS);
    await streamEvents(core.events, reply, q, 'application/json', dockerSubject, dockerEventLine);
  });
}
