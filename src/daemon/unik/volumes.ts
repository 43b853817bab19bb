import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import type { VolumeRecord } from '../../model/types.js';
import { bool2016 } from '../http/errors.js';
import { readForm } from './form.js';
import { volumeJson } from './serialize.js';
import { queryStrings } from './query.js';

type NameParams = { Params: { name: string } };
type Q = Record<string, string | undefined>;

export function volumeRoutes(app: FastifyInstance, core: Core): void {
  const json = (v: VolumeRecord) => volumeJson(v, v.provider.toUpperCase(), v.attachment ? core.instances.byId(v.attachment.instanceId)?.name ?? '' : '', core.volumes.problem(v));

  app.get('/volumes', async () => core.volumes.list().map(json));

  app.get<NameParams>('/volumes/:name', async (req) => json(core.volumes.get(req.params.name)));

  // 2016: size, type, provider and raw in the query; the data, if any, as the multipart "tarfile"
  app.post<NameParams & { Querystring: Q }>('/volumes/:name', { schema: { querystring: queryStrings('size', 'type', 'provider', 'raw') } }, async (req, reply) => {
    const { tarball } = await readForm(req, core.paths.tmp, false);
    const q = req.query;
    const size = q.size === undefined || q.size === '' ? undefined : Number(q.size);
    const v = await core.volumes.create({ name: req.params.name, provider: q.provider || undefined, type: q.type || undefined, sizeMb: size, upload: tarball, raw: bool2016(q.raw) });
    return reply.code(201).send(json(v));
  });

  app.delete<NameParams & { Querystring: Q }>('/volumes/:name', { schema: { querystring: queryStrings('force') } }, async (req, reply) => {
    await core.volumes.delete(req.params.name, bool2016(req.query.force), (id) => core.instances.byId(id));
    return reply.code(204).send();
  });

  app.post<{ Params: { name: string; instance: string }; Querystring: Q }>('/volumes/:name/attach/:instance', { schema: { querystring: queryStrings('mount') } }, async (req, reply) => {
    const v = await core.attachVolume(req.params.name, req.params.instance, req.query.mount ?? '');
    return reply.code(202).type('text/plain; charset=utf-8').send(v.name);
  });

  app.post<NameParams>('/volumes/:name/detach', async (req, reply) => {
    const v = core.volumes.detach(req.params.name, (id) => core.instances.byId(id));
    return reply.code(202).type('text/plain; charset=utf-8').send(v.name);
  });
}
