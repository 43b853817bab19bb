import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { dockerBool } from './errors.js';
import { parsePlatform } from '../../model/arch.js';
import { formatReference, parseReference } from '../../hub/reference.js';
import { registryAuth } from '../http/registry-auth.js';
import { resolveImage } from './names.js';
import { imageInspect, imageSummary } from './serialize.js';
import { queryStrings } from '../unik/query.js';

type Name = { Params: { name: string } };

export function imageRoutes(app: FastifyInstance, core: Core, opts: { unversioned: boolean }): void {
  app.get('/images/json', async () => {
    const counts = core.instances.countsByImage();
    return core.images.list().map((i) => imageSummary(core, i, counts));
  });

  app.get<Name>('/images/:name/json', async (req) => imageInspect(resolveImage(core, req.params.name)));
  // a registry reference holds slashes (`docker image inspect 127.0.0.1:5000/unik/app:v1`)
  app.get<{ Params: { '*': string } }>('/images/*', async (req, reply) => {
    const m = /^(.+)\/json$/.exec(req.params['*']);
    // anything else under /images/ is a route Docker has and unik does not (history, get, search)
    if (!m) return reply.code(501).send({ message: `unik does not support GET /images/${req.params['*'].slice(0, 200)} of the Docker API` });
    return imageInspect(resolveImage(core, m[1]!));
  });

  // Pull: through the hub, with Docker's JSON progress lines. After the first byte, errors are
  // in-band ({"error"}), which the CLI prints before exiting 1.
  app.post<{ Querystring: { fromImage?: string; tag?: string; platform?: string } }>('/images/create', { schema: { querystring: queryStrings('fromImage', 'tag', 'platform') } }, async (req, reply) => {
    const from = req.query.fromImage ?? '';
    const tag = req.query.tag ?? 'latest';
    const ref = tag.startsWith('sha256:') ? `${from}@${tag}` : `${from}:${tag}`;
    const creds = registryAuth(req);
    // docker pull --platform linux/arm64: checked before the stream starts, so a bad one is a 400
    const arch = req.query.platform ? parsePlatform(req.query.platform) : undefined;
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/json' });
    const send = (e: unknown) => reply.raw.write(JSON.stringify(e) + '\n');
    try {
      const r = parseReference(ref);
      send({ status: `Pulling from ${r.repository}`, id: r.tag });
      const existing = core.images.list().find((i) => i.manifest.source === formatReference(r));
      const name = existing?.name ?? localNameFor(core, r.repository);
      const o = { creds, ...(arch ? { arch } : {}) };
      let img;
      if (await core.hub.isUnikImage(ref, o)) {
        img = await core.hub.pull(ref, name, !!existing, o, (p) => {
          if (p.bytes !== undefined) send({ status: 'Downloading', progressDetail: { current: p.bytes, total: p.total }, id: p.message });
        });
      } else {
        // an ordinary container image: built into a unik image, its steps shown as status lines
        send({ status: `${formatReference(r)} is a container image: building it into the unikernel ${name}` });
        const prepared = await core.images.prepare({ name, fromImage: ref, ...(creds ? { registryCreds: creds } : {}), ...(arch ? { arch } : {}), force: !!existing });
        img = await prepared.run((p) => send(p.percent === undefined ? { status: p.message, id: p.step } : { status: 'Downloading', progressDetail: { current: p.percent, total: 100 }, id: p.message }));
      }
      send({ status: `Digest: ${img.manifest.sourceDigest}` });
      send({ status: `Status: Downloaded newer image for ${formatReference(r)}` });
    } catch (e) {
      const message = e instanceof Error ? e.message + ((e as { hint?: string }).hint ? ` (${(e as { hint?: string }).hint})` : '') : String(e);
      send({ errorDetail: { message }, error: message });
    }
    reply.raw.end();
  });

  // unversioned DELETE /images/:name is the 2016 route (204); Docker's lives under /vX.Y
  if (!opts.unversioned)
    app.delete<Name & { Querystring: { force?: string } }>('/images/:name', { schema: { querystring: queryStrings('force') } }, async (req) => {
      const img = resolveImage(core, req.params.name);
      await core.images.delete(img.id, dockerBool(req.query.force), (id) => core.instances.deleteAllOfImage(id));
      return [{ Untagged: `${img.name}:latest` }, { Deleted: `sha256:${img.id}` }];
    });
}

/** A pulled image's local name: the repository's last part, or with a suffix if that is taken. */
function localNameFor(core: Core, repository: string): string {
  const base = repository.split('/').pop()!.replace(/[^a-zA-Z0-9_.-]/g, '-');
  const taken = new Set(core.images.list().map((i) => i.name));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}
