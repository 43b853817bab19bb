import type { Dispatcher } from 'undici';
import { failedPrecondition } from '../model/errors.js';

// Registries answer blob GETs with redirects to storage hosts (S3, a CDN). undici's request()
// does not follow redirects (maxRedirections 0), so they are followed here, where each hop is
// checked: at most MAX_HOPS, http(s) only, never from HTTPS down to HTTP, and the
// Authorization header only ever goes to the registry's own origin (scheme, host and port).

export const MAX_HOPS = 5;
const REDIRECT = new Set([301, 302, 303, 307, 308]);

export interface HopRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  headers: Record<string, string>;
  body?: Dispatcher.DispatchOptions['body'];
  /** sent to `ownOrigin` only */
  authorization?: string;
}

export interface Followed {
  res: Dispatcher.ResponseData;
  /** where the answer came from: a 401 counts only from the registry's own origin */
  url: URL;
}

function refuse(registry: string, why: string): Error {
  return failedPrecondition('REGISTRY_REDIRECT', `the registry ${registry} answered with a redirect unik does not follow: ${why}`, 'the pull or push was stopped and nothing was stored; check the registry address');
}

/** `send` makes one request (errors mapped by the caller); only GET and HEAD are followed. */
export async function followRedirects(start: URL, req: HopRequest, ownOrigin: string, registry: string, send: (url: URL, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>): Promise<Followed> {
  let url = start;
  for (let hop = 0; ; hop++) {
    const headers = { ...req.headers, ...(req.authorization && url.origin === ownOrigin ? { authorization: req.authorization } : {}) };
    const res = await send(url, { method: req.method, headers, body: req.body, maxRedirections: 0, headersTimeout: 30_000, bodyTimeout: 120_000 } as Dispatcher.RequestOptions);
    // a body cut off on purpose (too large) emits an abort error after the fact: never unhandled
    res.body.on('error', () => {});
    const follows = REDIRECT.has(res.statusCode) && (req.method === 'GET' || req.method === 'HEAD');
    if (!follows || res.headers.location === undefined) return { res, url };
    await res.body.dump();
    if (hop + 1 > MAX_HOPS) throw refuse(registry, `more than ${MAX_HOPS} redirects`);
    let next: URL;
    try {
      next = new URL(String(res.headers.location), url);
    } catch {
      throw refuse(registry, `a bad location ${JSON.stringify(String(res.headers.location).slice(0, 200))}`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw refuse(registry, `to a ${next.protocol} URL`);
    if (url.protocol === 'https:' && next.protocol === 'http:') throw refuse(registry, `from HTTPS down to plain HTTP (${next.origin})`);
    if (next.username || next.password) throw refuse(registry, 'to a URL with credentials in it');
    url = next;
  }
}

