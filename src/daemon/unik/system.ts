import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { notFound } from '../../model/errors.js';
import { queryStrings } from './query.js';
import { hostCheckJson } from './serialize.js';

export function systemRoutes(app: FastifyInstance, core: Core): void {
  app.get('/available_compilers', async () => core.compilers().map((c) => c.name).sort());

  app.get('/available_providers', async () => (await core.providers()).filter((p) => p.available).map((p) => p.name));

  app.get<{ Querystring: { base?: string; lang?: string; provider?: string } }>('/describe_compiler', { schema: { querystring: queryStrings('base', 'lang', 'provider') } }, async (req, reply) => {
    const { base = 'linux', lang = '', provider = 'qemu' } = req.query;
    const c = core.compilers().find((x) => x.base === base && x.language === lang && x.provider === provider);
    if (!c) throw notFound('COMPILER_NOT_FOUND', `no compiler ${base}-${lang}-${provider}`, 'see `unik compilers`');
    return reply.type('text/plain; charset=utf-8').send(c.description + '\n');
  });

  /** unik addition: every provider with whether it works here and why. */
  app.get('/providers', async () =>
    (await core.providers()).map((p) => ({ Name: p.name, Infrastructure: p.infrastructure, Available: p.available, Reason: p.reason })),
  );

  /** unik addition: what this host has and lacks to build and run, each problem with the command that fixes it. Takes no input, changes nothing. */
  app.get('/doctor', async () => (await core.doctor()).map(hostCheckJson));
}
