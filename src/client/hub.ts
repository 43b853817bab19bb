// The hub routes of the daemon: log in to, push to, pull from and search an OCI registry.
// The daemon keeps no credentials: each call carries them in X-Registry-Auth (Docker's way).
import { NDJSON } from '../api/types.js';
import type { ErrorJson, ImageJson } from '../api/types.js';
import type { SendOptions, UnikClient } from './client.js';
import { UnikApiError, toUnreachable } from './errors.js';
import { ndjsonLines } from './ndjson.js';

/** Docker's AuthConfig subset: what X-Registry-Auth carries, base64 of its JSON. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry, e.g. `127.0.0.1:5000` or `ghcr.io`. */
  serveraddress: string;
}

export const REGISTRY_AUTH_HEADER = 'X-Registry-Auth';

/** One progress line of a streamed push or pull; Bytes/Total when the step moves data. */
export interface HubProgress {
  Step: string;
  Message: string;
  Percent?: number;
  Bytes?: number;
  Total?: number;
}

/** What a push answers: the ref as pushed and the manifest's digest and size. */
export interface PushResult {
  Ref: string;
  Digest: string;
  Size: number;
  /** the tag's platforms when it became a multi-architecture index (a unik addition) */
  Platforms?: string[];
}

export interface SearchResult {
  /** The repository, e.g. `unik/app`. */
  Name: string;
  Tags: string[];
}

export interface LoginOptions {
  registry: string;
  username: string;
  password: string;
  insecure?: boolean;
  signal?: AbortSignal;
}

export interface PushOptions {
  auth?: RegistryAuth | undefined;
  /** Plain http or an untrusted certificate for this registry. */
  insecure?: boolean;
  signal?: AbortSignal;
}

export interface PullOptions extends PushOptions {
  /** The local image name; default: the last path component of the repository. */
  name?: string | undefined;
  /** Replace a local image of the same name. */
  force?: boolean;
  /** The architecture to take from a multi-architecture image (default: the daemon host's). */
  arch?: string;
}

export interface SearchOptions {
  auth?: RegistryAuth | undefined;
  insecure?: boolean;
  signal?: AbortSignal;
}

/** The X-Registry-Auth value: base64 of `{"username","password","serveraddress"}`. */
export function encodeRegistryAuth(auth: RegistryAuth): string {
  const { username, password, serveraddress } = auth;
  return Buffer.from(JSON.stringify({ username, password, serveraddress }), 'utf8').toString('base64');
}

/** The inverse of encodeRegistryAuth (also takes the URL-safe alphabet Docker clients send). */
export function decodeRegistryAuth(header: string): RegistryAuth {
  return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as RegistryAuth;
}

/**
 * The local name a pulled REF gets by default: the last path component of the repository,
 * without tag or digest (`127.0.0.1:5000/unik/go-http:v1` → `go-http`).
 */
export function localNameOf(ref: string): string {
  const withoutDigest = ref.split('@')[0] ?? '';
  const last = withoutDigest.split('/').pop() ?? '';
  // The registry's port is in the first component, so a ":" in the last one starts the tag.
  const colon = last.indexOf(':');
  return colon >= 0 ? last.slice(0, colon) : last;
}

const seg = encodeURIComponent;

function authHeaders(auth: RegistryAuth | undefined): Record<string, string> | undefined {
  return auth ? { [REGISTRY_AUTH_HEADER.toLowerCase()]: encodeRegistryAuth(auth) } : undefined;
}

export class HubApi {
  constructor(private readonly c: UnikClient) {}

  /** Checks the credentials against the registry; the daemon stores nothing. 401 when refused. */
  login(opts: LoginOptions): Promise<{ Status: string }> {
    const json = { Registry: opts.registry, Username: opts.username, Password: opts.password, Insecure: opts.insecure ?? false };
    const send: SendOptions = { json };
    if (opts.signal) send.signal = opts.signal;
    return this.c.json('POST', '/hub/login', 200, send);
  }

  /**
   * Pushes the local `image` to `ref` (REGISTRY/REPO[:TAG]). With onEvent the daemon streams
   * NDJSON progress; without it the call waits for a plain 202.
   */
  async push(image: string, ref: string, opts: PushOptions = {}, onEvent?: (p: HubProgress) => void): Promise<PushResult> {
    const path = `/images/push/${seg(image)}`;
    const send = this.transfer(opts, { ref, insecure: String(opts.insecure ?? false) });
    if (!onEvent) return this.c.json('POST', path, 202, send);
    const res = await this.c.send('POST', path, [200, 202], { ...send, accept: NDJSON });
    // A daemon that ignores Accept answers the plain way (202 + result); take that too.
    if (res.status === 202) return JSON.parse(await this.c.readText(res)) as PushResult;
    return this.readStream<PushResult>(res, 'Pushed', 'push', onEvent);
  }

  /** Pulls `ref` and stores it as a local image (named by opts.name, else localNameOf(ref)). */
  async pull(ref: string, opts: PullOptions = {}, onEvent?: (p: HubProgress) => void): Promise<ImageJson> {
    const path = `/images/pull/${seg(opts.name || localNameOf(ref))}`;
    const send = this.transfer(opts, { ref, insecure: String(opts.insecure ?? false), force: String(opts.force ?? false), arch: opts.arch });
    if (!onEvent) return this.c.json('POST', path, 202, send);
    const res = await this.c.send('POST', path, [200, 202], { ...send, accept: NDJSON });
    if (res.status === 202) return JSON.parse(await this.c.readText(res)) as ImageJson;
    return this.readStream<ImageJson>(res, 'Image', 'pull', onEvent);
  }

  /** The registry's repositories (catalog) whose name contains `term`, with their tags. */
  search(registry: string, term?: string, opts: SearchOptions = {}): Promise<SearchResult[]> {
    const send: SendOptions = { query: { registry, term: term || undefined, insecure: String(opts.insecure ?? false) } };
    const headers = authHeaders(opts.auth);
    if (headers) send.headers = headers;
    if (opts.signal) send.signal = opts.signal;
    return this.c.json('GET', '/hub/search', 200, send);
  }

  /** Push and pull move whole images: no header/body timeouts. */
  private transfer(opts: PushOptions, query: SendOptions['query']): SendOptions {
    const send: SendOptions = { patient: true };
    if (query) send.query = query;
    const headers = authHeaders(opts.auth);
    if (headers) send.headers = headers;
    if (opts.signal) send.signal = opts.signal;
    return send;
  }

  private async readStream<T>(res: Response, key: 'Pushed' | 'Image', what: string, onEvent: (p: HubProgress) => void): Promise<T> {
    if (!res.body) throw streamEnded(what);
    try {
      for await (const line of ndjsonLines(res.body)) {
        const event = line as Partial<Record<'Progress' | 'Pushed' | 'Image' | 'Error', unknown>>;
        if (event.Progress) onEvent(event.Progress as HubProgress);
        else if (event[key]) return event[key] as T;
        else if (event.Error) throw streamedError(event.Error as Partial<ErrorJson> & { Status?: number });
      }
    } catch (err) {
      throw toUnreachable(this.c.baseUrl, err) ?? err;
    }
    throw streamEnded(what);
  }
}

function streamedError(e: Partial<ErrorJson> & { Status?: number }): UnikApiError {
  const status = typeof e.Status === 'number' ? e.Status : 500;
  return new UnikApiError(status, {
    message: typeof e.message === 'string' ? e.message : `the daemon reported an error (${status})`,
    code: typeof e.code === 'string' ? e.code : `UNIK_ERR_HTTP_${status}`,
    ...(typeof e.hint === 'string' ? { hint: e.hint } : {}),
  });
}

function streamEnded(what: string): UnikApiError {
  return new UnikApiError(502, {
    code: 'UNIK_ERR_HUB_STREAM_ENDED',
    message: `the daemon ended the ${what} stream without reporting a result`,
    hint: `check the daemon log; it may have been restarted during the ${what}`,
  });
}
