// The 2016 client libraries, as they were written: POST bodies with no Content-Type, and `null`
// as the body of start and stop. The 2016 daemon read them; so does unik, on the 2016 routes only.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/daemon/app.js';
import { createCore, type Core } from '../../src/core/core.js';

const home = mkdtempSync(join(tmpdir(), 'unik-legacy-'));
let core: Core;
let app: FastifyInstance;
before(async () => {
  core = await createCore({ home, watch: false });
  app = await buildApp({ core });
  await app.ready();
});
after(async () => {
  await app.close();
  core.close();
  rmSync(home, { recursive: true, force: true });
});

/** A POST exactly as Go's http.Post(url, "", body) of the 2016 client sends it: no Content-Type. */
const bare = (url: string, payload: string) => app.inject({ method: 'POST', url, payload, headers: { host: '127.0.0.1' } });

test('2016 clients: null bodies on start and stop, a JSON run body, all without a Content-Type, reach the handlers', async () => {
  for (const url of ['/instances/nope/start', '/instances/nope/stop']) {
    const r = await bare(url, 'null');
    assert.equal(r.headers['content-type']?.toString().startsWith('application/json'), true);
    assert.equal(r.statusCode, 404, `${url}: ${r.body}`);
    assert.match(r.json().message, /no such instance/i);
  }
  const run = await bare('/instances/run', JSON.stringify({ InstanceName: 'a', ImageName: 'nope', Env: {}, Mounts: {}, MemoryMb: 0, NoCleanup: false, DebugMode: false }));
  assert.equal(run.statusCode, 404, run.body);
  assert.match(run.json().message, /no such image|image/i);
  const detach = await bare('/volumes/nope/detach', 'null');
  assert.equal(detach.statusCode, 404, detach.body);
  // and an empty POST, as the CLI's push and the 2016 start send, is still no body at all
  for (const url of ['/instances/nope/start', '/images/push/nope']) {
    const empty = await bare(url, '');
    assert.equal(empty.statusCode, 404, `${url}: ${empty.body}`);
  }
});

test('bad input stays bad: a null run body is a 400; a declared non-JSON type is still a 415; other routes are unchanged', async () => {
  assert.equal((await bare('/instances/run', 'null')).statusCode, 400);
  const typed = await app.inject({ method: 'POST', url: '/instances/run', payload: '{}', headers: { host: '127.0.0.1', 'content-type': 'application/xml' } });
  assert.equal(typed.statusCode, 415);
  assert.equal((await bare('/hub/login', '{}')).statusCode, 415, 'only the 2016 routes take a body without a type');
});

test('hostile: a cross-site page cannot use the missing type to reach a 2016 route', async () => {
  const r = await app.inject({ method: 'POST', url: '/instances/nope/stop', payload: 'null', headers: { host: '127.0.0.1', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' } });
  assert.equal(r.statusCode, 403);
  assert.deepEqual(core.instances.list(), []);
});
