import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Core } from '../../core/core.js';
import type { InstanceRecord } from '../../model/types.js';
import { bool2016 } from '../http/errors.js';
import { instanceJson } from './serialize.js';
import { queryStrings } from './query.js';

const RunBody = Type.Object({
  ImageName: Type.String({ minLength: 1 }),
  InstanceName: Type.Optional(Type.String()),
  Env: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())])),
  MemoryMb: Type.Optional(Type.Integer({ minimum: 0 })),
  Ports: Type.Optional(
    Type.Union([
      Type.Array(
        Type.Union([
          Type.String(),
          Type.Object({ HostIp: Type.Optional(Type.String()), HostPort: Type.Integer(), GuestPort: Type.Integer(), Protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])) }),
        ]),
      ),
      Type.Null(),
    ]),
  ),
  Mounts: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())])),
  NoCleanup: Type.Optional(Type.Boolean()),
  DebugMode: Type.Optional(Type.Boolean()),
  Network: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
});

type IdParams = { Params: { id: string } };

export function instanceRoutes(app: FastifyInstance, core: Core): void {
  /** image and network names by id, read once per answer (once per row made a long list quadratic) */
  const names = () => ({ images: core.images.names(), networks: new Map(core.networks.list().map((n) => [n.id, n.name])) });
  const json = (i: InstanceRecord, n = names()) => {
    const net = i.spec.network && n.networks.get(i.spec.network.networkId);
    return instanceJson(i, n.images.get(i.imageId) ?? '', i.provider.toUpperCase(), i.spec.network ? (net ?? i.spec.network.networkId.slice(0, 12)) : 'user');
  };
  const refreshed = async (i: InstanceRecord) => (await core.instances.refresh(i.id)) ?? i;

  app.get('/instances', async () => {
    const list = await core.instances.listObserved();
    const n = names();
    return list.map((i) => json(i, n));
  });

  app.get<IdParams>('/instances/:id', async (req) => json(await refreshed(core.instances.get(req.params.id))));

  app.post<{ Body: Static<typeof RunBody> }>('/instances/run', { schema: { body: RunBody } }, async (req, reply) => {
    const b = req.body;
    const inst = await core.instances.run({
      image: b.ImageName,
      name: b.InstanceName,
      env: b.Env ?? {},
      memoryMb: b.MemoryMb,
      ports: (b.Ports ?? []).map((p) => (typeof p === 'string' ? p : { hostIp: p.HostIp, hostPort: p.HostPort, guestPort: p.GuestPort, protocol: p.Protocol })),
      mounts: b.Mounts ?? {},
      network: b.Network,
    });
    return reply.code(201).send(json(inst));
  });

  app.post<IdParams>('/instances/:id/start', async (req, reply) => {
    await core.instances.start(req.params.id);
    return reply.code(200).send();
  });

  app.post<IdParams & { Querystring: { timeout?: string } }>('/instances/:id/stop', { schema: { querystring: queryStrings('timeout') } }, async (req, reply) => {
    const t = Number(req.query.timeout);
    await core.instances.stop(req.params.id, Number.isFinite(t) && t >= 0 ? t * 1000 : undefined);
    return reply.code(200).send();
  });

  app.delete<IdParams & { Querystring: { force?: string } }>('/instances/:id', { schema: { querystring: queryStrings('force') } }, async (req, reply) => {
    await core.instances.delete(req.params.id, bool2016(req.query.force));
    return reply.code(204).send();
  });

  // Logs: the instance's console. With follow, new output streams until the instance stops or
  // the client goes; with delete=true (2016, for orchestrators) the instance is removed when
  // the client goes.
  app.get<IdParams & { Querystring: { follow?: string; delete?: string } }>('/instances/:id/logs', { schema: { querystring: queryStrings('follow', 'delete') } }, async (req, reply) => {
    const { inst, file } = core.instances.logFile(req.params.id);
    const follow = bool2016(req.query.follow);
    const deleteOnClose = bool2016(req.query.delete);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
    let gone = false;
    res.on('close', () => {
      gone = true;
      if (deleteOnClose) core.instances.delete(inst.id, true).catch(() => {});
    });
    let offset = 0;
    const drain = async () => {
      const fh = await open(file, 'r').catch(() => undefined);
      if (!fh) return;
      try {
        // smaller than what was sent: the console was rotated, its new file starts from the top
        if ((await fh.stat()).size < offset) offset = 0;
        const buf = Buffer.allocUnsafe(64 * 1024);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          if (!res.write(Buffer.from(buf.subarray(0, bytesRead)))) await new Promise((r) => res.once('drain', r));
        }
      } finally {
        await fh.close();
      }
    };
    await drain();
    while (follow && !gone) {
      await sleep(100);
      await drain();
      const now = await core.instances.refresh(inst.id);
      if (!now || (now.status.state !== 'running' && now.status.state !== 'pending')) {
        await drain();
        break;
      }
    }
    res.end();
  });
}
