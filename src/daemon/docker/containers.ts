import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { failedPrecondition, invalid, isUnikError, notFound } from '../../model/errors.js';
import { archOf, parsePlatform } from '../../model/arch.js';
import { dockerBool } from './errors.js';
import { parseSignal, resolveImage } from './names.js';
import { containerInspect, containerSummary, lookup } from './serialize.js';
import { streamLogs, waitFor } from './streams.js';
import { CreateBody, toRunRequest } from './translate.js';
import { queryStrings } from '../unik/query.js';
import { freePort } from '../../util/free-port.js';

type Id = { Params: { id: string } };
type Q = Record<string, string | undefined>;

const isLive = (state: string) => state === 'running' || state === 'pending';

export function containerRoutes(app: FastifyInstance, core: Core): void {
  const find = (ref: string) => core.instances.get(ref);
  const fresh = async (ref: string) => {
    const i = find(ref);
    return (await core.instances.refresh(i.id)) ?? i;
  };

  app.get<{ Querystring: Q }>('/containers/json', { schema: { querystring: queryStrings('all') } }, async (req) => {
    const all = dockerBool(req.query.all);
    const list = await core.instances.listObserved();
    const look = lookup(core);
    return list
      .filter((i) => all || isLive(i.status.state))
      .sort((a, b) => b.created.localeCompare(a.created))
      .map((i) => containerSummary(core, i, look));
  });

  // The body is the full Docker Config; the name comes in the query (dockerode repeats the
  // body's fields in the query too: the body wins).
  app.post<{ Body: CreateBody; Querystring: Q }>('/containers/create', { schema: { body: CreateBody, querystring: queryStrings('name', 'platform') } }, async (req, reply) => {
    const image = resolveImage(core, req.body.Image);
    // docker run --platform: a local image of another architecture is "not found", as Docker
    // says it, so the CLI pulls that platform (through the hub) and creates again
    if (req.query.platform) {
      const want = parsePlatform(req.query.platform);
      const have = archOf(image.manifest.arch) ?? image.manifest.arch;
      if (want !== have) throw notFound('IMAGE_PLATFORM_MISMATCH', `image with reference ${req.body.Image} was found but does not match the specified platform: wanted linux/${want}, actual: linux/${have}`);
    }
    const name = req.query.name ? req.query.name.replace(/^\//, '') : undefined;
    const run = await toRunRequest(req.body, name, image.id, freePort);
    const inst = await core.instances.create(run).catch((e: unknown) => {
      // not a 404: on a 404 from create the docker CLI goes to pull the image
      if (isUnikError(e) && e.code === 'UNIK_ERR_NETWORK_NOT_FOUND')
        throw invalid('NETWORK_NOT_FOUND', `network ${run.network} not found`, `create it first (docker network create ${run.network}), or leave --network out`);
      throw e;
    });
    return reply.code(201).send({ Id: inst.id, Warnings: [] });
  });

  app.get<Id>('/containers/:id/json', async (req) => containerInspect(core, await fresh(req.params.id)));

  app.post<Id>('/containers/:id/start', async (req, reply) => {
    const i = await fresh(req.params.id);
    if (isLive(i.status.state)) return reply.code(304).send();
    await core.instances.start(i.id);
    return reply.code(204).send();
  });

  app.post<Id & { Querystring: Q }>('/containers/:id/stop', { schema: { querystring: queryStrings('t') } }, async (req, reply) => {
    const i = await fresh(req.params.id);
    if (!isLive(i.status.state)) return reply.code(304).send();
    await core.instances.stop(i.id, graceMs(req.query.t));
    return reply.code(204).send();
  });

  app.post<Id & { Querystring: Q }>('/containers/:id/restart', { schema: { querystring: queryStrings('t') } }, async (req, reply) => {
    const i = await fresh(req.params.id);
    if (isLive(i.status.state)) await core.instances.stop(i.id, graceMs(req.query.t));
    await core.instances.start(i.id);
    return reply.code(204).send();
  });

  app.post<Id & { Querystring: Q }>('/containers/:id/kill', { schema: { querystring: queryStrings('signal') } }, async (req, reply) => {
    const sig = parseSignal(req.query.signal);
    if (sig === undefined) throw invalid('BAD_SIGNAL', `invalid signal: ${req.query.signal}`);
    const i = await fresh(req.params.id);
    if (!isLive(i.status.state)) throw failedPrecondition('NOT_RUNNING', `Container ${req.params.id} is not running`);
    await core.instances.signal(i.id, sig);
    return reply.code(204).send();
  });

  app.delete<Id & { Querystring: Q }>('/containers/:id', { schema: { querystring: queryStrings('force') } }, async (req, reply) => {
    const i = await fresh(req.params.id);
    if (isLive(i.status.state) && !dockerBool(req.query.force))
      throw failedPrecondition('INSTANCE_RUNNING', `You cannot remove a running container ${i.id}. Stop the container before attempting removal or force remove`);
    await core.instances.delete(i.id, true);
    return reply.code(204).send();
  });

  // wait: the headers go out at once (the CLI blocks on them before it calls start), the body
  // when the condition is met.
  app.post<Id & { Querystring: Q }>('/containers/:id/wait', { schema: { querystring: queryStrings('condition') } }, async (req, reply) => {
    const i = find(req.params.id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const result = await waitFor(core, i.id, req.query.condition ?? 'not-running', gone.signal);
    if (!res.destroyed) res.end(JSON.stringify(result) + '\n');
  });

  app.get<Id & { Querystring: Q }>('/containers/:id/logs', { schema: { querystring: queryStrings('stdout', 'stderr', 'follow', 'tail', 'timestamps', 'since', 'until') } }, async (req, reply) => {
    const i = find(req.params.id);
    const q = req.query;
    if (q.stdout !== undefined && q.stderr !== undefined && !dockerBool(q.stdout) && !dockerBool(q.stderr))
      throw invalid('NO_STREAMS', 'you must choose at least one stream');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/vnd.docker.multiplexed-stream' });
    let closed = false;
    res.on('close', () => (closed = true));
    const tail = q.tail === undefined || q.tail === 'all' ? undefined : Math.max(0, Number(q.tail) || 0);
    const stdout = q.stdout === undefined || dockerBool(q.stdout);
    if (stdout)
      await streamLogs(core, i.id, res, { follow: dockerBool(q.follow), tail, timestamps: dockerBool(q.timestamps), since: epochMs(q.since), until: epochMs(q.until) }, () => closed);
    res.end();
  });
}

function graceMs(t: string | undefined): number {
  const n = Number(t);
  return t !== undefined && Number.isFinite(n) && n >= 0 ? n * 1000 : 10_000;
}

/** Docker's since/until: unix seconds, possibly fractional; 0 means unset. */
function epochMs(v: string | undefined): number | undefined {
  const n = Number(v);
  return v && Number.isFinite(n) && n > 0 ? n * 1000 : undefined;
}

