import type { FuzzRequest } from './requests.js';

// The oracle: what a daemon may answer to a generated request. It never answers 5xx to what
// a client sent, except where the request was valid and the server side legitimately cannot
// do the work here (listed below, each for a reason), and a 4xx always says why in JSON.

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
  /** over a real socket */
  socket: boolean;
}

export type Verdict =
  | { ok: true; note?: 'damaged-image' | 'upstream' | 'unsupported' | 'parser' | 'framework' | 'hostile-refused' | 'hostile-accepted' }
  | { ok: false; kind: '5xx' | 'unclear' | 'leak'; detail: string };

/** Resources of the Docker Engine API: a 501 for these means "unik does not do this yet". */
const DOCKER_RESOURCES = new Set(['containers', 'images', 'networks', 'volumes', 'exec', 'swarm', 'nodes', 'services', 'tasks', 'secrets', 'configs', 'plugins', 'system', 'events', 'auth', 'build', 'commit', 'session', 'distribution', 'grpc']);

const DOCKER_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE']);

function safePath(target: string): string {
  try {
    return new URL(target, 'http://unik').pathname;
  } catch {
    return target;
  }
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function judge(req: FuzzRequest, a: Answer, secret: string): Verdict {
  if (a.body.includes(secret)) return { ok: false, kind: 'leak', detail: 'the secret file outside the home shows up in the answer' };
  const json = parseJson(a.body) as { message?: unknown; code?: unknown } | undefined;
  const message = typeof json?.message === 'string' ? json.message : '';
  const code = typeof json?.code === 'string' ? json.code : '';

  if (a.status >= 500) {
    // the fixture image has no kernel on purpose: a request valid enough to boot (or push) it ends here
    if (a.status === 503 && (code === 'UNIK_ERR_IMAGE_FILES_MISSING' || /^image \S+ is damaged/.test(message))) return { ok: true, note: 'damaged-image' };
    // registries are never reachable from the fuzzer (a closed port, a name that does not resolve)
    if (req.upstream && a.status === 503 && (/REGISTRY_UNREACHABLE|TOKEN_SERVER_UNREACHABLE/.test(code) || /^cannot reach the (registry|token server)/.test(message)))
      return { ok: true, note: 'upstream' };
    // the resource as the daemon routed it: from its message, or (HEAD) from the normalised URL
    const path = /^unik does not support \S+ (\/\S*)/.exec(message)?.[1] ?? (a.socket ? req.target.split('?')[0]! : safePath(req.target)).replace(/^\/(v[^/]*|_docker)(?=\/)/, '');
    const resource = /^\/([^/?]+)/.exec(path)?.[1];
    if (a.status === 501 && resource && DOCKER_RESOURCES.has(resource) && DOCKER_METHODS.has(req.method) && (req.method === 'HEAD' || /^unik does not support /.test(message))) return { ok: true, note: 'unsupported' };
    return { ok: false, kind: '5xx', detail: `${a.status} ${a.body.subarray(0, 300).toString('utf8')}` };
  }

  if (a.status >= 400) {
    // Node's HTTP parser refused the bytes before the app saw them (bare "400 Bad Request")
    if (a.socket && a.body.length === 0 && !a.headers['content-type']) return { ok: true, note: 'parser' };
    // …or Fastify did, before any unik handler ran: its clientError answer (431 headers too
    // large, 400 unparsable) or its router's (414 path parameter over maxParamLength)
    const fw = json as { error?: unknown; statusCode?: unknown } | undefined;
    if (typeof fw?.error === 'string' && fw.statusCode === a.status && message && (!code || code.startsWith('FST_ERR_'))) return { ok: true, note: 'framework' };
    if (req.method !== 'HEAD') {
      if (!message) return { ok: false, kind: 'unclear', detail: `${a.status} without a JSON {message}: ${a.body.subarray(0, 200).toString('utf8')}` };
      if (req.api === 'unik' && req.route !== 'stray' && !/^UNIK_ERR_[A-Z0-9_]+$/.test(code)) return { ok: false, kind: 'unclear', detail: `${a.status} without a UNIK_ERR_ code: ${a.body.subarray(0, 200).toString('utf8')}` };
    }
    if (req.hostile && a.status === 403) return { ok: true, note: 'hostile-refused' };
    return { ok: true };
  }
  if (req.hostile) return { ok: true, note: 'hostile-accepted' };
  return { ok: true };
}
