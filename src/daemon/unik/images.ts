import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { bool2016 } from '../http/errors.js';
import { streamNdjson, wantsNdjson } from '../http/ndjson.js';
import { readForm } from './form.js';
import { imageJson } from './serialize.js';
import { registryAuth } from '../http/registry-auth.js';
import { queryStrings } from './query.js';

type NameParams = { Params: { name: string } };

export function imageRoutes(app: FastifyInstance, core: Core): void {
  const infra = (provider: string) => provider.toUpperCase();

  app.get('/images', async () => core.images.list().map((i) => imageJson(i, infra(i.provider))));

  app.get<NameParams>('/images/:name', async (req) => {
    const i = core.images.get(req.params.name);
    return imageJson(i, infra(i.provider));
  });

  app.delete<NameParams & { Querystring: { force?: string } }>('/images/:name', { schema: { querystring: queryStrings('force') } }, async (req, reply) => {
    await core.images.delete(req.params.name, bool2016(req.query.force), (id) => core.instances.deleteAllOfImage(id));
    return reply.code(204).send();
  });

  // Build: multipart "tarfile" plus base/lang/provider/args/mounts/force (query or form, as in
  // 2016). Or from a container image (unik): fromImage=REGISTRY/REPO:TAG with no body
  // (credentials in X-Registry-Auth, insecure=true for plain HTTP), or fromImage=docker-archive
  // / fromImage=oci with the archive (or the layout as a .tar.gz) as the tarfile, and tag= to
  // pick one image of it. Every input is checked before the first byte of the answer; with
  // Accept: application/x-ndjson the steps stream as they happen and the result comes last.
  app.post<NameParams>('/images/:name/create', { schema: { querystring: queryStrings('base', 'lang', 'language', 'provider', 'arch', 'platform', 'args', 'mounts', 'force', 'fromImage', 'tag', 'insecure', 'slim', 'probe', 'keep') } }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    // a registry image needs no body; everything else is the 2016 upload
    const { fields, tarball } = q.fromImage && !req.isMultipart() ? { fields: {} as Record<string, string>, tarball: undefined } : await readForm(req, core.paths.tmp, true);
    const param = (k: string) => fields[k] ?? q[k];
    const fromImage = param('fromImage');
    const tag = param('tag');
    const prepared = await core.images.prepare({
      name: req.params.name,
      ...(tarball ? { tarball } : {}),
      ...(fromImage ? { fromImage: tag && /^(docker-archive|oci)$/.test(fromImage) ? `${fromImage}::${tag}` : fromImage } : {}),
      ...(fromImage ? { registryCreds: registryAuth(req), insecure: bool2016(param('insecure')) } : {}),
      base: param('base'),
      language: param('lang') || param('language'),
      provider: param('provider'),
      // arch=arm64, or Docker's platform=linux/arm64 (checked by prepare, which owns the upload)
      arch: param('arch'),
      platform: param('platform'),
      args: param('args'),
      mountPoints: (param('mounts') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      force: bool2016(param('force')),
      // slim=true (probe=http://:PORT/PATH or tcp://:PORT, keep=PATH,PATH): only the files the app opens
      ...(bool2016(param('slim')) ? { slim: { ...(param('probe') ? { probe: param('probe') } : {}), keep: (param('keep') ?? '').split(',').filter(Boolean) } } : {}),
    });

    if (!wantsNdjson(req.headers.accept)) {
      const img = await prepared.run(() => {});
      return reply.code(201).send(imageJson(img, infra(img.provider)));
    }
    await streamNdjson(reply, async (send) => {
      const img = await prepared.run((p) => send({ Progress: { Step: p.step, Message: p.message, ...(p.percent === undefined ? {} : { Percent: p.percent }) } }));
      return { Image: imageJson(img, infra(img.provider)) };
    });
  });

  // Export (unik addition): the image as a bootable disk for a platform, streamed back; the
  // work folder goes once the answer is sent or the client leaves
  app.post<NameParams & { Querystring: { format?: string; firmware?: string } }>('/images/:name/export', { schema: { querystring: queryStrings('format', 'firmware') } }, async (req, reply) => {
    const r = await core.exportImage(req.params.name, req.query.format ?? 'raw', req.query.firmware ?? 'both');
    const stream = createReadStream(r.file);
    stream.once('close', () => void r.cleanup());
    return reply
      .code(200)
      .header('content-type', 'application/octet-stream')
      .header('content-length', String((await stat(r.file)).size))
      .header('content-disposition', `attachment; filename="${r.fileName.replace(/[^A-Za-z0-9_.-]/g, '_')}"`)
      .send(stream);
  });
}
