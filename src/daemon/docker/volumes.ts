import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { invalid } from '../../core/errors.js';
import { dockerBool } from './errors.js';
import { volumeShape } from './serialize.js';

type Name = { Params: { name: string } };

/** Docker's volume routes; served under /vX.Y only (unversioned /volumes is the 2016 API). */
export function volumeRoutes(app: FastifyInstance, core: Core): void {
  app.get('/volumes', async () => ({ Volumes: core.volumes.list().map((v) => volumeShape(core, v)), Warnings: null }));

  app.post<{ Body: { Name?: string; DriverOpts?: Record<string, string> | null } | null }>('/volumes/create', async (req, reply) => {
    const b = req.body ?? {};
    const name = b.Name || `vol-${Date.now().toString(36)}`;
    const size = b.DriverOpts?.size;
    if (size !== undefined && !/^\d+$/.test(size)) throw invalid('BAD_VOLUME_SIZE', `size is in MB: ${JSON.stringify(size)}`);
    const v = await core.volumes.create({ name, type: b.DriverOpts?.type, sizeMb: size ? Number(size) : 64 });
    return reply.code(201).send(volumeShape(core, v));
  });

  app.get<Name>('/volumes/:name', async (req) => volumeShape(core, core.volumes.get(req.params.name)));

  app.delete<Name & { Querystring: { force?: string } }>('/volumes/:name', async (req, reply) => {
    await core.volumes.delete(req.params.name, dockerBool(req.query.force), (id) => core.instances.byId(id));
    return reply.code(204).send();
  });
}
