import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { dockerBool } from './errors.js';
import { resolveImage } from './names.js';
import { imageInspect, imageSummary } from './serialize.js';

type Name = { Params: { name: string } };

export function imageRoutes(app: FastifyInstance, core: Core, opts: { unversioned: boolean }): void {
  app.get('/images/json', async () => core.images.list().map((i) => imageSummary(core, i)));

  app.get<Name>('/images/:name/json', async (req) => imageInspect(resolveImage(core, req.params.name)));

  // Pull: unik has no hub yet. The answer is a streamed error line, which the CLI prints
  // (after "Unable to find image … locally" for docker run) before exiting 1.
  app.post<{ Querystring: { fromImage?: string; tag?: string } }>('/images/create', async (req, reply) => {
    const ref = `${req.query.fromImage ?? ''}${req.query.tag ? `:${req.query.tag}` : ''}`;
    const message = `cannot pull ${ref}: unik has no image hub yet; build the image with \`unik push NAME PATH\` (it then shows in docker images)`;
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/json' });
    reply.raw.end(JSON.stringify({ errorDetail: { message }, error: message }) + '\n');
  });

  // unversioned DELETE /images/:name is the 2016 route (204); Docker's lives under /vX.Y
  if (!opts.unversioned)
    app.delete<Name & { Querystring: { force?: string } }>('/images/:name', async (req) => {
      const img = resolveImage(core, req.params.name);
      await core.images.delete(img.id, dockerBool(req.query.force), (id) => core.instances.deleteAllOfImage(id));
      return [{ Untagged: `${img.name}:latest` }, { Deleted: `sha256:${img.id}` }];
    });
}
