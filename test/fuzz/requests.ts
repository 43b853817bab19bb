import fc from 'fast-check';
import { createBody, dockerVolumeBody, jsonBody, loginBody, multipartBody, runBody, tarBytes, type Body } from './bodies.js';
import { anyJson, anyText, imageRef, instanceRef, mountPoint, queryValue, registryRef, validName, volumeRef } from './values.js';

// The model of both APIs, read from src/daemon/unik/*.ts and src/daemon/docker/*.ts: every
// route with its path parameters, the query keys it reads and its body, turned into an
// arbitrary of concrete requests. Unknown routes and methods are generated too.

export interface FuzzRequest {
  /** the route template, for per-route figures */
  route: string;
  api: 'unik' | 'docker';
  method: string;
  /** path and query, as sent on the request line */
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** over a real connection (else app.inject) */
  socket: boolean;
  /** may stay open legitimately (wait, attach): judged on its head */
  longPoll: boolean;
  /** may talk to a registry (which is never reachable here) */
  upstream: boolean;
  /** sent with a foreign Origin or a rebinding Host: 403 is the right answer */
  hostile?: 'origin' | 'host';
}

export interface ModelContext {
  port: number;
  /** a port nothing listens on: registry references point there */
  closedPort: number;
  outside: string;
  secretFile: string;
}

type ParamKind = 'image' | 'instance' | 'volume' | 'name' | 'any';

interface Route {
  method: string;
  /** ":x" segments are parameters */
  path: string;
  api: 'unik' | 'docker';
  params?: Record<string, ParamKind>;
  query?: string[];
  body?: 'run' | 'create' | 'login' | 'dockerVolume' | 'imageUpload' | 'volumeUpload';
  longPoll?: boolean;
  upstream?: boolean;
  /** headers the route reads */
  reads?: ('accept' | 'registryAuth')[];
}

const UNIK: Route[] = [
  { method: 'GET', path: '/images', api: 'unik' },
  { method: 'GET', path: '/images/:name', api: 'unik', params: { name: 'image' } },
  { method: 'DELETE', path: '/images/:name', api: 'unik', params: { name: 'image' }, query: ['force'] },
  { method: 'POST', path: '/images/:name/create', api: 'unik', params: { name: 'name' }, query: ['base', 'lang', 'language', 'provider', 'args', 'mounts', 'force'], body: 'imageUpload', reads: ['accept'] },
  { method: 'GET', path: '/instances', api: 'unik' },
  { method: 'GET', path: '/instances/:id', api: 'unik', params: { id: 'instance' } },
  { method: 'POST', path: '/instances/run', api: 'unik', body: 'run' },
  { method: 'POST', path: '/instances/:id/start', api: 'unik', params: { id: 'instance' } },
  { method: 'POST', path: '/instances/:id/stop', api: 'unik', params: { id: 'instance' }, query: ['timeout'] },
  { method: 'DELETE', path: '/instances/:id', api: 'unik', params: { id: 'instance' }, query: ['force'] },
  { method: 'GET', path: '/instances/:id/logs', api: 'unik', params: { id: 'instance' }, query: ['follow', 'delete'], longPoll: true },
  { method: 'GET', path: '/events', api: 'unik', query: ['since', 'until', 'filters'], longPoll: true },
  { method: 'GET', path: '/metrics', api: 'unik' },
  { method: 'GET', path: '/volumes', api: 'unik' },
  { method: 'GET', path: '/volumes/:name', api: 'unik', params: { name: 'volume' } },
  { method: 'POST', path: '/volumes/:name', api: 'unik', params: { name: 'name' }, query: ['size', 'type', 'provider', 'raw'], body: 'volumeUpload' },
  { method: 'DELETE', path: '/volumes/:name', api: 'unik', params: { name: 'volume' }, query: ['force'] },
  { method: 'POST', path: '/volumes/:name/attach/:instance', api: 'unik', params: { name: 'volume', instance: 'instance' }, query: ['mount'] },
  { method: 'POST', path: '/volumes/:name/detach', api: 'unik', params: { name: 'volume' } },
  { method: 'POST', path: '/hub/login', api: 'unik', body: 'login', upstream: true },
  { method: 'GET', path: '/hub/search', api: 'unik', query: ['registry', 'term', 'insecure'], upstream: true, reads: ['registryAuth'] },
  { method: 'POST', path: '/images/push/:name', api: 'unik', params: { name: 'image' }, query: ['ref', 'url', 'insecure'], upstream: true, reads: ['accept', 'registryAuth'] },
  { method: 'POST', path: '/images/pull/:name', api: 'unik', params: { name: 'name' }, query: ['ref', 'force', 'insecure'], upstream: true, reads: ['accept', 'registryAuth'] },
  { method: 'GET', path: '/available_compilers', api: 'unik' },
  { method: 'GET', path: '/available_providers', api: 'unik' },
  { method: 'GET', path: '/describe_compiler', api: 'unik', query: ['base', 'lang', 'provider'] },
  { method: 'GET', path: '/providers', api: 'unik' },
];

const DOCKER: Route[] = [
  { method: 'GET', path: '/_ping', api: 'docker' },
  { method: 'HEAD', path: '/_ping', api: 'docker' },
  { method: 'GET', path: '/version', api: 'docker' },
  { method: 'GET', path: '/info', api: 'docker' },
  { method: 'GET', path: '/images/json', api: 'docker', query: ['all', 'filters'] },
  { method: 'GET', path: '/images/:name/json', api: 'docker', params: { name: 'image' } },
  { method: 'POST', path: '/images/create', api: 'docker', query: ['fromImage', 'tag'], upstream: true, reads: ['registryAuth'] },
  { method: 'DELETE', path: '/images/:name', api: 'docker', params: { name: 'image' }, query: ['force', 'noprune'] },
  { method: 'GET', path: '/containers/json', api: 'docker', query: ['all', 'limit', 'filters'] },
  { method: 'POST', path: '/containers/create', api: 'docker', query: ['name', 'platform'], body: 'create' },
  { method: 'GET', path: '/containers/:id/json', api: 'docker', params: { id: 'instance' } },
  { method: 'POST', path: '/containers/:id/start', api: 'docker', params: { id: 'instance' } },
  { method: 'POST', path: '/containers/:id/stop', api: 'docker', params: { id: 'instance' }, query: ['t', 'signal'] },
  { method: 'POST', path: '/containers/:id/restart', api: 'docker', params: { id: 'instance' }, query: ['t'] },
  { method: 'POST', path: '/containers/:id/kill', api: 'docker', params: { id: 'instance' }, query: ['signal'] },
  { method: 'DELETE', path: '/containers/:id', api: 'docker', params: { id: 'instance' }, query: ['force', 'v'] },
  { method: 'POST', path: '/containers/:id/wait', api: 'docker', params: { id: 'instance' }, query: ['condition'], longPoll: true },
  { method: 'GET', path: '/containers/:id/logs', api: 'docker', params: { id: 'instance' }, query: ['stdout', 'stderr', 'follow', 'tail', 'timestamps', 'since', 'until'], longPoll: true },
  { method: 'POST', path: '/containers/:id/attach', api: 'docker', params: { id: 'instance' }, query: ['stream', 'stdout', 'stderr', 'logs'], longPoll: true },
  { method: 'GET', path: '/networks/:id', api: 'docker', params: { id: 'any' } },
  { method: 'GET', path: '/plugins/:id/json', api: 'docker', params: { id: 'any' } },
  { method: 'GET', path: '/events', api: 'docker', query: ['since', 'until', 'filters'], longPoll: true },
  { method: 'GET', path: '/volumes', api: 'docker', query: ['filters'] },
  { method: 'POST', path: '/volumes/create', api: 'docker', body: 'dockerVolume' },
  { method: 'GET', path: '/volumes/:name', api: 'docker', params: { name: 'volume' } },
  { method: 'DELETE', path: '/volumes/:name', api: 'docker', params: { name: 'volume' }, query: ['force'] },
  // Docker routes unik does not serve: 501 with a message (the CLI prints it)
  { method: 'GET', path: '/networks', api: 'docker' },
  { method: 'POST', path: '/containers/:id/exec', api: 'docker', params: { id: 'instance' } },
  { method: 'POST', path: '/build', api: 'docker' },
];

export const ROUTE_COUNT = UNIK.length + DOCKER.length;

const VERSIONS = ['', '/v1.43', '/v1.43', '/v1.24', '/v1.41', '/v1', '/v2.0', '/v999.999', '/v1.43.1', '/v'];

/** Percent-encodes any string (lone surrogates included, which encodeURIComponent refuses). */
export function encode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** How a path segment goes on the wire: encoded, double-encoded, or raw (real sockets only). */
const segmentStyle = fc.constantFrom('encoded', 'encoded', 'encoded', 'encoded', 'double', 'raw');

function paramValue(kind: ParamKind): fc.Arbitrary<string> {
  switch (kind) {
    case 'image':
      return imageRef;
    case 'instance':
      return instanceRef;
    case 'volume':
      return volumeRef;
    case 'name':
      return fc.oneof(validName, anyText);
    default:
      return anyText;
  }
}

function queryFor(route: Route, ctx: ModelContext): fc.Arbitrary<[string, string][]> {
  const keys = route.query ?? [];
  const value = (k: string) => {
    if (k === 'ref' || k === 'url' || k === 'fromImage') return registryRef(ctx.closedPort);
    if (k === 'registry') return fc.oneof(fc.constantFrom(`127.0.0.1:${ctx.closedPort}`, 'registry.invalid', 'docker.io', ''), anyText);
    if (k === 'mount' || k === 'mounts') return mountPoint;
    // a real language would start a real build: only names that are not languages
    if (k === 'lang' || k === 'language') return anyText.map((s) => `x${s}`);
    // event filters: Docker's two JSON forms, unknown keys, and any JSON
    if (k === 'filters') return fc.oneof(fc.constantFrom('{"type":["container"]}', '{"type":{"instance":true}}', '{"event":["die"],"label":["a=b"]}', '{"bogus":["x"]}', '{"type":"x"}'), anyJson.map((v) => JSON.stringify(v) ?? 'null'), anyText);
    return queryValue;
  };
  const known = keys.length ? fc.array(fc.constantFrom(...keys).chain((k) => value(k).map((v): [string, string] => [k, v])), { maxLength: 4 }) : fc.constant<[string, string][]>([]);
  const stray = fc.array(fc.tuple(anyText, anyText), { maxLength: 1 });
  return fc.tuple(known, stray).map(([a, b]) => [...a, ...b]);
}

function bodyFor(route: Route, ctx: ModelContext): fc.Arbitrary<Body> {
  const fields = (keys: string[]) => fc.array(fc.constantFrom(...keys).chain((k) => queryValue.map((v): [string, string] => [k, k === 'lang' || k === 'language' ? `x${v}` : v])), { maxLength: 4 });
  switch (route.body) {
    case 'run':
      return jsonBody(runBody);
    case 'create':
      return jsonBody(createBody);
    case 'login':
      return jsonBody(loginBody.map((b) => ({ ...b, Registry: typeof b.Registry === 'string' && b.Registry.length < 3 ? `127.0.0.1:${ctx.closedPort}` : b.Registry })));
    case 'dockerVolume':
      return jsonBody(dockerVolumeBody);
    case 'imageUpload':
      return multipartBody(tarBytes(ctx.outside, ctx.secretFile), fields(['base', 'lang', 'language', 'provider', 'args', 'mounts', 'force']));
    case 'volumeUpload':
      return fc.oneof(fc.constant<Body>({}), multipartBody(tarBytes(ctx.outside, ctx.secretFile), fields(['size', 'type', 'raw'])));
    default:
      // bodies nobody asked for: ignored, or refused, never a crash
      return fc.oneof({ weight: 6, arbitrary: fc.constant<Body>({}) }, { weight: 1, arbitrary: jsonBody(fc.jsonValue({ maxDepth: 2 })) });
  }
}

const registryAuthHeader = fc.oneof(
  fc.constantFrom('', 'e30=', 'bm90IGpzb24=', '!!!', 'eyJ1c2VybmFtZSI6e319', Buffer.from('{"username":"u","password":"p"}').toString('base64url'), Buffer.from('{"username":1}').toString('base64'), 'A'.repeat(20_000)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? '').toString('base64')),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
);

/** Header values: printable ASCII only on the wire (Node refuses the rest, as it should). */
const headerSafe = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');

function headersFor(route: Route, ctx: ModelContext, body: Body): fc.Arbitrary<{ headers: [string, string][]; hostile?: 'origin' | 'host' }> {
  const accept = route.reads?.includes('accept') ? fc.option(fc.constantFrom('application/x-ndjson', 'application/json', '*/*', 'application/x-ndjson, */*')) : fc.constant(null);
  const auth = route.reads?.includes('registryAuth') ? fc.option(registryAuthHeader) : fc.constant(null);
  // one request in twelve comes from a foreign page or through a rebinding name
  const hostile = fc.oneof(
    { weight: 11, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom('http://evil.example', 'null', `http://127.0.0.1:${ctx.port}.evil.example`, 'https://localhost.evil.example').map((v) => ({ kind: 'origin' as const, v })) },
    { weight: 1, arbitrary: fc.constantFrom('evil.example', `127.0.0.1.evil.example:${ctx.port}`, `attacker.example:${ctx.port}`, 'rebind.example').map((v) => ({ kind: 'host' as const, v })) },
  );
  return fc.tuple(accept, auth, hostile).map(([a, r, h]) => {
    const headers: [string, string][] = [['Host', h?.kind === 'host' ? h.v : `127.0.0.1:${ctx.port}`]];
    if (h?.kind === 'origin') headers.push(['Origin', h.v]);
    if (body.contentType) headers.push(['Content-Type', headerSafe(body.contentType)]);
    if (a) headers.push(['Accept', a]);
    if (r !== null) headers.push(['X-Registry-Auth', headerSafe(r)]);
    if (route.path.endsWith('/attach')) headers.push(['Connection', 'Upgrade'], ['Upgrade', 'tcp']);
    return { headers, ...(h ? { hostile: h.kind } : {}) };
  });
}

function routeRequest(route: Route, ctx: ModelContext): fc.Arbitrary<FuzzRequest> {
  const names = Object.keys(route.params ?? {});
  const params = fc.tuple(...names.map((n) => fc.tuple(paramValue(route.params![n]!), segmentStyle)));
  const version = route.api === 'docker' ? fc.constantFrom(...VERSIONS) : fc.constant('');
  return fc
    .tuple(params, version, queryFor(route, ctx), bodyFor(route, ctx), fc.nat({ max: 4 }))
    .chain(([ps, ver, query, body, transport]) =>
      headersFor(route, ctx, body).map(({ headers, hostile }) => {
        let raw = false;
        let path = route.path;
        names.forEach((n, i) => {
          const [v, style] = ps[i]!;
          raw ||= style === 'raw';
          path = path.replace(`:${n}`, style === 'raw' ? v : style === 'double' ? encode(encode(v)) : encode(v));
        });
        const qs = query.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&');
        const target = `${ver}${path}${qs ? `?${qs}` : ''}`;
        return {
          route: `${route.method} ${route.path} (${route.api})`,
          api: route.api,
          method: route.method,
          target,
          headers,
          ...(body.data ? { body: body.data } : {}),
          // raw bytes on the request line, long polls and upgrades need a real connection
          socket: raw || !!route.longPoll || transport === 0,
          longPoll: !!route.longPoll,
          upstream: !!route.upstream,
          ...(hostile ? { hostile } : {}),
        };
      }),
    );
}

/** Requests to no route: odd methods, odd paths, with or without a Docker version. */
function strayRequest(ctx: ModelContext): fc.Arbitrary<FuzzRequest> {
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND', 'TRACE');
  const path = fc.oneof(
    fc.array(anyText, { minLength: 1, maxLength: 4 }).map((segs) => '/' + segs.map(encode).join('/')),
    fc.constantFrom('/', '//', '/..', '/images/../instances', '/%2e%2e/etc/passwd', '/images/%00', '/_docker/containers/json', '/_docker/../images', '/v1.43', '/v1.43/', '/v1.43//containers/json', '/instances/'),
  );
  return fc.tuple(method, fc.constantFrom(...VERSIONS), path, fc.nat({ max: 3 })).map(([m, v, p, t]) => ({
    route: 'stray',
    api: v ? ('docker' as const) : ('unik' as const),
    method: m,
    target: v + p,
    headers: [['Host', `127.0.0.1:${ctx.port}`]] as [string, string][],
    socket: t === 0,
    longPoll: false,
    upstream: false,
  }));
}

/** Every request the fuzzer sends comes from here. */
export function requestArbitrary(ctx: ModelContext): fc.Arbitrary<FuzzRequest> {
  const routes = [...UNIK, ...DOCKER].map((r) => ({ weight: r.body || r.params ? 3 : 1, arbitrary: routeRequest(r, ctx) }));
  return fc.oneof({ depthSize: 'small' }, ...routes, { weight: 6, arbitrary: strayRequest(ctx) });
}
