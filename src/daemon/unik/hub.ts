import type { FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Core } from '../../core/core.js';
import { unavailable } from '../../model/errors.js';
import type { ImageRecord } from '../../model/types.js';
import type { PushResult, TransferProgress } from '../../core/hub.js';
import { parseArch } from '../../model/arch.js';
import { parseReference } from '../../hub/reference.js';
import { bool2016 } from '../http/errors.js';
import { streamNdjson, wantsNdjson } from '../http/ndjson.js';
import { registryAuth } from '../http/registry-auth.js';
import { imageJson } from './serialize.js';
import { queryStrings } from './query.js';
import { Type, type Static } from '@sinclair/typebox';

type Q = Record<string, string | undefined>;
const LoginBody = Type.Union([Type.Null(), Type.Object({ Registry: Type.Optional(Type.String()), Username: Type.Optional(Type.String()), Password: Type.Optional(Type.String()), Insecure: Type.Optional(Type.Boolean()) })]);
const progressLine = (p: TransferProgress) => ({ Progress: { Step: p.step, Message: p.message, ...(p.percent === undefined ? {} : { Percent: p.percent }), ...(p.bytes === undefined ? {} : { Bytes: p.bytes, Total: p.total }) } });

export function hubRoutes(app: FastifyInstance, core: Core): void {
  app.post<{ Body: Static<typeof LoginBody> }>('/hub/login', { schema: { body: LoginBody } }, async (req) => {
    const b = req.body ?? {};
    await core.hub.login(b.Registry ?? '', { creds: b.Username ? { username: b.Username, password: b.Password ?? '' } : undefined, insecure: !!b.Insecure });
    return { Status: 'Login Succeeded' };
  });

  app.get<{ Querystring: Q }>('/hub/search', { schema: { querystring: queryStrings('registry', 'term', 'insecure') } }, async (req) => {
    const found = await core.hub.search(req.query.registry ?? '', req.query.term ?? '', { creds: registryAuth(req), insecure: bool2016(req.query.insecure) });
    return found.map((f) => ({ Name: f.name, Tags: f.tags }));
  });

  // 2016: POST /images/push/:name with the hub config → 202. unik: ?ref=REGISTRY/REPO:TAG.
  app.post<{ Params: { name: string }; Querystring: Q }>('/images/push/:name', { schema: { querystring: queryStrings('ref', 'url', 'insecure') } }, async (req, reply) => {
    const img = core.images.get(req.params.name);
    const ref = req.query.ref || req.query.url || '';
    parseReference(ref);
    checkImageFiles(core, img);
    const o = { creds: registryAuth(req), insecure: bool2016(req.query.insecure) };
    if (!wantsNdjson(req.headers.accept)) {
      const r = await core.hub.push(img.id, ref, o);
      return reply.code(202).send(pushedJson(r));
    }
    await streamNdjson(reply, async (send) => {
      const r = await core.hub.push(img.id, ref, o, (p) => send(progressLine(p)));
      return { Pushed: pushedJson(r) };
    });
  });

  // 2016: POST /images/pull/:name → 202. :name is the local name; ?ref= where it comes from.
  app.post<{ Params: { name: string }; Querystring: Q }>('/images/pull/:name', { schema: { querystring: queryStrings('ref', 'force', 'insecure', 'arch') } }, async (req, reply) => {
    const ref = req.query.ref || req.params.name;
    if (req.query.arch) parseArch(req.query.arch);
    parseReference(ref);
    const force = bool2016(req.query.force);
    core.images.checkNameFree(req.params.name, force);
    const o = { creds: registryAuth(req), insecure: bool2016(req.query.insecure), ...(req.query.arch ? { arch: req.query.arch } : {}) };
    if (!wantsNdjson(req.headers.accept)) {
      const img = await core.hub.pull(ref, req.params.name, force, o);
      return reply.code(202).send(imageJson(img, img.provider.toUpperCase()));
    }
    await streamNdjson(reply, async (send) => {
      const img = await core.hub.pull(ref, req.params.name, force, o, (p) => send(progressLine(p)));
      return { Image: imageJson(img, img.provider.toUpperCase()) };
    });
  });
}

/** A push's result; Platforms when the tag became a multi-architecture index. */
function pushedJson(r: PushResult): { Ref: string; Digest: string; Size: number; Platforms?: string[] } {
  return { Ref: r.ref, Digest: r.digest, Size: r.size, ...(r.platforms ? { Platforms: r.platforms } : {}) };
}

/**
 * An image whose files were removed behind the daemon's back is refused as `start` refuses it,
 * rather than failing half-way through packing with a raw ENOENT. (Belongs in core.hub.push.)
 */
function checkImageFiles(core: Core, img: ImageRecord): void {
  for (const f of [img.manifest.kernel.file, img.manifest.root.file])
    if (!existsSync(join(core.images.dir(img), f))) throw unavailable('IMAGE_FILES_MISSING', `image ${img.name} is damaged: its ${f} is missing`, `rebuild it: unik push ${img.name} PATH --force, or pull it again`);
}
