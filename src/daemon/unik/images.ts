import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NDJSON, type BuildEvent } from '../../api/types.js';
import type { Core } from '../../core/core.js';
import { invalid } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { bool2016, errorBody } from '../http/errors.js';
import { imageJson } from './serialize.js';

type NameParams = { Params: { name: string } };

export function imageRoutes(app: FastifyInstance, core: Core): void {
  const infra = (provider: string) => provider.toUpperCase();

  app.get('/images', async () => core.images.list().map((i) => imageJson(i, infra(i.provider))));

  app.get<NameParams>('/images/:name', async (req) => {
    const i = core.images.get(req.params.name);
    return imageJson(i, infra(i.provider));
  });

  app.delete<NameParams & { Querystring: { force?: string } }>('/images/:name', async (req, reply) => {
    await core.images.delete(req.params.name, bool2016(req.query.force), (id) => core.instances.deleteAllOfImage(id));
    return reply.code(204).send();
  });

  // Build: multipart "tarfile" plus base/lang/provider/args/mounts/force (query or form, as in
  // 2016). Every input is checked before the first byte of the answer; with
  // Accept: application/x-ndjson the steps stream as they happen and the result comes last.
  app.post<NameParams>('/images/:name/create', async (req, reply) => {
    const { fields, tarball } = await readBuildUpload(req, core);
    const param = (k: string) => fields[k] ?? (req.query as Record<string, string | undefined>)[k];
    const prepared = await core.images.prepare({
      name: req.params.name,
      tarball,
      base: param('base'),
      language: param('lang') || param('language'),
      provider: param('provider'),
      args: param('args'),
      mountPoints: (param('mounts') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      force: bool2016(param('force')),
    });

    if (!(req.headers.accept ?? '').includes(NDJSON)) {
      const img = await prepared.run(() => {});
      return reply.code(201).send(imageJson(img, infra(img.provider)));
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-cache' });
    const send = (e: BuildEvent) => res.write(JSON.stringify(e) + '\n');
    try {
      const img = await prepared.run((p) => send({ Progress: { Step: p.step, Message: p.message, ...(p.percent === undefined ? {} : { Percent: p.percent }) } }));
      send({ Image: imageJson(img, infra(img.provider)) });
    } catch (e) {
      const { status, body } = errorBody(e);
      send({ Error: { ...body, Status: status } });
    }
    res.end();
  });
}

async function readBuildUpload(req: FastifyRequest, core: Core): Promise<{ fields: Record<string, string>; tarball: string }> {
  if (!req.isMultipart())
    throw invalid('NOT_MULTIPART', 'a build is a multipart/form-data upload', 'send the app as a .tar.gz in the form field "tarfile"');
  await mkdir(core.paths.tmp, { recursive: true });
  const tarball = join(core.paths.tmp, `upload-${newId().slice(0, 16)}.tar.gz`);
  const fields: Record<string, string> = {};
  let gotFile = false;
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'tarfile' || gotFile) {
          part.file.resume();
          continue;
        }
        await pipeline(part.file, createWriteStream(tarball));
        if (part.file.truncated) throw invalid('UPLOAD_TOO_LARGE', 'the uploaded tarfile is larger than the daemon accepts');
        gotFile = true;
      } else if (typeof part.value === 'string') {
        fields[part.fieldname] = part.value;
      }
    }
    if (!gotFile) throw invalid('NO_TARFILE', 'the upload has no "tarfile" field', 'send the app as a .tar.gz in the form field "tarfile"');
  } catch (e) {
    await rm(tarball, { force: true });
    throw e;
  }
  return { fields, tarball };
}
