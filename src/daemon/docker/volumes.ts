import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { invalid } from '../../model/errors.js';
import { dockerBool } from './errors.js';
import { volumeShape } from './serialize.js';
import { queryStrings } from '../unik/query.js';
import { Type, type Static } from '@sinclair/typebox';

type Name = { Params: { name: string } };

/** The fields of Docker's volume create body unik reads; a Name that is not a string is refused. */
const CreateBody = Type.Union([Type.Null(), Type.Object({ Name: Type.Optional(Type.String()), DriverOpts: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())])) })]);

/** Docker's volume routes; served under /vX.Y only (unversioned /volumes is the 2016 API). */
export function volumeRoutes(app: FastifyInstance, core: Core): void {
  app.get('/volumes', async () => ({ Volumes: core.volumes.list().map((v) => volumeShape(core, v)), Warnings: null }));

  app.post<{ Body: Static<typeof CreateBody> }>('/volumes/create', { schema: { body: CreateBody } }, async (req, reply) => {
    const b = req.body ?? {};
    const name = b.Name || `vol-${Date.now().toString(36)}`;
    const size = b.DriverOpts?.size;
    if (size !== undefined && !/^\d+$/.test(size)) throw invalid('BAD_VOLUME_SIZE', `size is in MB: ${JSON.stringify(size)}`);
    const v = await core.volumes.create({ name, type: b.DriverOpts?.type, sizeMb: size ? Number(size) : 64 });
    return reply.code(201).send(volumeShape(core, v));
  });

  app.get<Name>('/volumes/:name', async (req) => volumeShape(core, core.volumes.get(req.params.name)));

  app.delete<Name & { Querystring: { force?: string } }>('/volumes/:name', { schema: { querystring: queryStrings('force') } }, async (req, reply) => {
    await core.volumes.delete(req.params.name, dockerBool(req.query.force), (id) => core.instances.byId(id));
    return reply.code(204).send();
  });
}
