import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import type { UnikEvent } from '../../core/events.js';
import { NDJSON } from '../../api/types.js';
import { queryStrings } from './query.js';
import { eventQuery, isoNano, jsonWithNano, streamEvents } from '../http/event-stream.js';

/** The filters of unik's GET /events: Docker's, in unik's words. */
export const UNIK_EVENT_FILTERS = ['type', 'event', 'instance', 'image', 'volume', 'label'] as const;

/** One event in unik's PascalCase: {Type, Action, Id, Name, Attributes, Time, TimeNano}. */
export function unikEventLine(e: UnikEvent): string {
  return jsonWithNano({ Type: e.type, Action: e.action, Id: e.id, Name: e.attributes.name ?? '', Attributes: e.attributes, Time: isoNano(e.timeNano) }, 'TimeNano', e.timeNano);
}

/** unik additions: GET /metrics (Prometheus) and GET /events (what happened, as JSON lines). */
export function monitoringRoutes(app: FastifyInstance, core: Core): void {
  app.get('/metrics', async (_req, reply) => reply.type(core.metrics.contentType).header('cache-control', 'no-cache').send(await core.metrics.text()));

  app.get<{ Querystring: { since?: string; until?: string; filters?: string } }>('/events', { schema: { querystring: queryStrings('since', 'until', 'filters') } }, async (req, reply) => {
    const q = eventQuery(req.query, UNIK_EVENT_FILTERS);
    await streamEvents(core.events, reply, q, NDJSON, (e) => e, unikEventLine);
  });
}
