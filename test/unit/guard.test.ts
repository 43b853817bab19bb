// The daemon's one request guard (Host, Origin, Sec-Fetch-Site, token), checked on every route
// the app registers, both API dialects, with a real core in a temp home: a refused request must
// change nothing in the store or on disk.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/daemon/app.js';
import { createCore, type Core } from '../../src/core/core.js';
import { hostName } from '../../src/daemon/http/guard.js';

const TOKEN = 'the-right-token-0123456789';

/** Every (method, path) of the app, from Fastify's route tree; parameters get harmless values. */
function routesOf(app: FastifyInstance): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│   |    )*)(?:├── |└── )(\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const path = stack.join('');
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      if (method === 'HEAD') continue;
      out.push({ method, url: path.replace(/:[A-Za-z]+/g, 'guardtest').replace(/\*$/, 'x') });
    }
  }
  return out;
}

/** The dashboard's static files (src/daemon/dashboard.ts): GET /ui, /ui/, /ui/style.css, /ui/js/*.js… */
const dashboardFile = (r: { method: string; url: string }) => r.method === 'GET' && /^\/ui(\/|$)/.test(r.url);

function snapshotState(core: Core): string {
  const dirs = [core.paths.images, core.paths.instances, core.paths.volumes].map((d) => readdirSync(d).sort().join(','));
  return JSON.stringify({ images: core.images.list().length, instances: core.instances.list().length, volumes: core.volumes.list().length, dirs });
}

describe('the request guard, on every route', () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-guard-'));
  let core: Core;
  let app: FastifyInstance;
  let open: FastifyInstance;
  let routes: { method: string; url: string }[];

  before(async () => {
    core = await createCore({ home, watch: false });
    app = await buildApp({ core, token: TOKEN, allowedHosts: ['unik.example.internal'] });
    open = await buildApp({ core });
    await app.ready();
    await open.ready();
    routes = routesOf(app);
  });
  after(async () => {
    await app.close();
    await open.close();
    core.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('the route table is read whole: both dialects, dozens of routes', () => {
    assert.ok(routes.length > 60, `only ${routes.length} routes found`);
    for (const r of ['POST /images/guardtest/create', 'POST /instances/run', 'POST /_docker/containers/create', 'DELETE /volumes/guardtest'])
      assert.ok(routes.some((x) => `${x.method} ${x.url}` === r), `${r} missing from ${routes.length} routes`);
  });

  test('without a token, or with a wrong one, every route answers 401 and nothing changes', async () => {
    const before = snapshotState(core);
    for (const r of [...routes.filter((x) => !dashboardFile(x)), { method: 'GET', url: '/no/such/route' }, { method: 'GET', url: '/ui/no-such-file.js' }, { method: 'POST', url: '/ui' }]) {
      for (const authorization of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, TOKEN]) {
        const res = await app.inject({ method: r.method as 'GET', url: r.url, headers: { host: '127.0.0.1:3000', ...(authorization ? { authorization } : {}) }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
        assert.equal(res.statusCode, 401, `${r.method} ${r.url} with ${authorization ?? 'no token'}: ${res.statusCode} ${res.body}`);
        assert.equal(res.json().code, 'UNIK_ERR_UNAUTHORIZED');
      }
    }
    assert.equal(snapshotState(core), before);
  });

  test('the dashboard\'s files, and only they, answer without the token (a browser cannot send one to open a page)', async () => {
    const files = routes.filter(dashboardFile);
    assert.ok(files.some((r) => r.url === '/ui') && files.some((r) => r.url === '/ui/js/main.js'), JSON.stringify(files));
    for (const r of files) {
      const res = await app.inject({ method: 'GET', url: r.url, headers: { host: '127.0.0.1:3000' } });
      assert.equal(res.statusCode, 200, r.url);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
    }
  });

  test('with the token, the guard lets requests through', async () => {
    const res = await app.inject({ method: 'GET', url: '/images', headers: { host: '127.0.0.1:3000', authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.statusCode, 200);
    const named = await app.inject({ method: 'GET', url: '/images', headers: { host: 'unik.example.internal:3000', authorization: `Bearer ${TOKEN}` } });
    assert.equal(named.statusCode, 200, 'a host name given with --allowed-host is served');
  });

  test('a foreign Origin is refused on every route (403), before any body is read', async () => {
    const before = snapshotState(core);
    for (const r of routes) {
      for (const origin of ['http://evil.test', 'null', 'http://127.0.0.1:3001', 'https://127.0.0.1:3000']) {
        const res = await open.inject({ method: r.method as 'GET', url: r.url, headers: { host: '127.0.0.1:3000', origin, 'content-type': 'text/plain' }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : 'x' });
        assert.equal(res.statusCode, 403, `${r.method} ${r.url} from ${origin}: ${res.statusCode}`);
        assert.equal(res.json().code, 'UNIK_ERR_FORBIDDEN_ORIGIN');
      }
    }
    assert.equal(snapshotState(core), before);
  });

  test('the daemon\'s own origin, and clients that send none, pass', async () => {
    for (const headers of [{ host: '127.0.0.1:3000' }, { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }, { host: 'localhost:3000', origin: 'http://localhost:3000', 'sec-fetch-site': 'same-origin' }, { host: '[::1]:3000' }]) {
      const res = await open.inject({ method: 'GET', url: '/images', headers });
      assert.equal(res.statusCode, 200, JSON.stringify(headers));
    }
  });

  test('Sec-Fetch-Site cross-site / same-site is refused even without an Origin (an <img> GET)', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const res = await open.inject({ method: 'GET', url: '/instances/x/logs?delete=true', headers: { host: '127.0.0.1:3000', 'sec-fetch-site': site } });
      assert.equal(res.statusCode, 403);
    }
  });

  test('a rebinding Host (a DNS name the daemon was not told) is refused on every route', async () => {
    const before = snapshotState(core);
    for (const r of routes) {
      for (const host of ['evil.test:3000', 'evil.test', '127.0.0.1.evil.test:3000', 'localhost.evil.test', 'a b', '127.0.0.1:3000@evil.test']) {
        const res = await open.inject({ method: r.method as 'GET', url: r.url, headers: { host }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
        assert.equal(res.statusCode, 403, `${r.method} ${r.url} Host ${host}: ${res.statusCode}`);
        assert.equal(res.json().code, 'UNIK_ERR_FORBIDDEN_HOST');
      }
    }
    assert.equal(snapshotState(core), before);
  });

  test('Host parsing', () => {
    assert.equal(hostName('127.0.0.1:3000'), '127.0.0.1');
    assert.equal(hostName('[::1]:3000'), '::1');
    assert.equal(hostName('LocalHost'), 'localhost');
    assert.equal(hostName(undefined), undefined);
    assert.equal(hostName('a:b:c'), null);
    assert.equal(hostName('x/y'), null);
    assert.equal(hostName('u@h'), null);
  });
});
