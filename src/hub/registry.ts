import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { failedPrecondition, internal, notFound, unauthenticated, unavailable } from '../core/errors.js';
import { MANIFEST_ACCEPT } from './mediatypes.js';
import { registryBase } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

/** Bytes moved so far for one blob; called often, so keep it cheap. */
export type BytesFn = (done: number, total: number) => void;

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

/**
 * A client of the OCI distribution API for one registry: Basic auth, or the Bearer token flow
 * (a 401 with WWW-Authenticate: Bearer realm=…, service=…, scope=… is answered by fetching a
 * token from the realm with the credentials), blob uploads in the POST-then-PUT form every
 * registry honours, and downloads verified by digest.
 */
export class RegistryClient {
  private readonly base: string;
  private authorization?: string;

  constructor(
    readonly registry: string,
    private readonly creds: Credentials | undefined,
    insecure: boolean,
  ) {
    this.base = registryBase(registry, insecure);
  }

  /** Checks the credentials (GET /v2/), as `hub login` does. */
  async ping(): Promise<void> {
    const res = await this.send('GET', '/v2/', { scope: 'registry:catalog:*' });
    await res.body.dump();
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, 'GET /v2/');
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    const res = await this.send('HEAD', `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull,push` });
    await res.body.dump();
    return res.statusCode === 200;
  }

  async uploadBlob(repo: string, digest: string, file: string, onBytes?: BytesFn): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const start = await this.send('POST', `/v2/${repo}/blobs/uploads/`, { scope });
    await start.body.dump();
    if (start.statusCode !== 202) throw this.unexpected(start.statusCode, `starting an upload to ${repo}`);
    const location = new URL(String(start.headers.location), this.base);
    location.searchParams.set('digest', digest);
    const { size } = await stat(file);
    let done = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        done += chunk.length;
        onBytes?.(done, size);
        cb(null, chunk);
      },
    });
    const body = createReadStream(file, { highWaterMark: 1 << 20 }).pipe(counter);
    const put = await this.send('PUT', location.pathname + location.search, { scope, body, headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } });
    const text = await put.body.text();
    if (put.statusCode !== 201) throw this.unexpected(put.statusCode, `uploading ${digest}`, text);
  }

  async putManifest(repo: string, tag: string, mediaType: string, body: Buffer): Promise<string> {
    const res = await this.send('PUT', `/v2/${repo}/manifests/${tag}`, { scope: `repository:${repo}:pull,push`, body, headers: { 'content-type': mediaType } });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw this.unexpected(res.statusCode, `storing the manifest of ${repo}:${tag}`, text);
    return String(res.headers['docker-content-digest'] ?? '');
  }

  async getManifest(repo: string, reference: string): Promise<{ mediaType: string; body: Buffer; digest: string }> {
    const res = await this.send('GET', `/v2/${repo}/manifests/${reference}`, { scope: `repository:${repo}:pull`, headers: { accept: MANIFEST_ACCEPT } });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode === 404) throw notFound('MANIFEST_UNKNOWN', `${this.registry}/${repo}:${reference} was not found`, 'check the repository and tag (unik hub search REGISTRY)');
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, `fetching ${repo}:${reference}`, body.toString());
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    return { mediaType: String(res.headers['content-type'] ?? '').split(';')[0]!, body, digest };
  }

  /** Streams a blob to a file, hashing as it goes; a digest that does not match is refused. */
  async downloadBlob(repo: string, digest: string, file: string, expectedSize: number, onBytes?: BytesFn): Promise<void> {
    const res = await this.send('GET', `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull` });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      if (res.statusCode === 404) throw notFound('BLOB_UNKNOWN', `blob ${digest} of ${repo} is missing from ${this.registry}`);
      throw this.unexpected(res.statusCode, `fetching blob ${digest}`, text);
    }
    const hash = createHash('sha256');
    let done = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        onBytes?.(done, expectedSize);
        cb(null, chunk);
      },
    });
    await pipeline(res.body, counter, createWriteStream(file));
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest)
      throw failedPrecondition('DIGEST_MISMATCH', `blob ${digest} of ${this.registry}/${repo} arrived with digest ${got}: the registry holds corrupt data`, 'the pull was refused and nothing was stored; push the image again');
  }

  async catalog(): Promise<string[]> {
    const res = await this.send('GET', '/v2/_catalog?n=1000', { scope: 'registry:catalog:*' });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, 'listing the catalog', text);
    return (JSON.parse(text) as { repositories?: string[] }).repositories ?? [];
  }

  async tags(repo: string): Promise<string[]> {
    const res = await this.send('GET', `/v2/${repo}/tags/list`, { scope: `repository:${repo}:pull` });
    const text = await res.body.text();
    if (res.statusCode === 404) return [];
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, `listing the tags of ${repo}`, text);
    return (JSON.parse(text) as { tags?: string[] | null }).tags ?? [];
  }

  /** One request, authenticating once when the registry asks (401) and retrying. */
  private async send(method: Method, path: string, opts: { scope: string; body?: Dispatcher.DispatchOptions['body']; headers?: Record<string, string> }): Promise<Dispatcher.ResponseData> {
    const attempt = () =>
      request(this.base + path, {
        method,
        headers: { ...opts.headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        body: opts.body,
        headersTimeout: 30_000,
        bodyTimeout: 120_000,
      }).catch((e: Error & { code?: string }) => {
        throw unavailable('REGISTRY_UNREACHABLE', `cannot reach the registry ${this.registry} (${e.code ?? e.message})`, 'check that it runs and the address is right (HTTP is used only for 127.0.0.1/localhost, or with --insecure)', e);
      });
    let res = await attempt();
    if (res.statusCode !== 401) return res;
    const challenge = String(res.headers['www-authenticate'] ?? '');
    await res.body.dump();
    if (opts.body && typeof (opts.body as { pipe?: unknown }).pipe === 'function') {
      // a stream body cannot be sent twice: authenticate first (HEAD), then the caller's upload
      throw internal('AUTH_ORDER', 'authentication was requested in the middle of an upload');
    }
    await this.authenticate(challenge, opts.scope);
    res = await attempt();
    if (res.statusCode === 401) {
      await res.body.dump();
      throw unauthenticated('REGISTRY_DENIED', `the registry ${this.registry} refused ${this.creds ? `the credentials of ${this.creds.username}` : 'an anonymous request'}`, `log in: unik hub login ${this.registry}`);
    }
    return res;
  }

  private async authenticate(challenge: string, scope: string): Promise<void> {
    const basic = this.creds ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` : undefined;
    if (/^Basic/i.test(challenge)) {
      if (!basic) throw unauthenticated('REGISTRY_LOGIN_REQUIRED', `the registry ${this.registry} requires a login`, `unik hub login ${this.registry}`);
      this.authorization = basic;
      return;
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (!/^Bearer/i.test(challenge) || !params.realm) throw unauthenticated('REGISTRY_AUTH', `the registry ${this.registry} asks for an authentication unik does not know: ${challenge || '(none)'}`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope || scope);
    const res = await request(url, { headers: basic ? { authorization: basic } : {} }).catch((e: Error) => {
      throw unavailable('TOKEN_SERVER_UNREACHABLE', `cannot reach the token server ${url.origin} of ${this.registry}: ${e.message}`);
    });
    const text = await res.body.text();
    if (res.statusCode === 401 || res.statusCode === 403)
      throw unauthenticated('REGISTRY_DENIED', `the registry ${this.registry} refused the credentials${this.creds ? ` of ${this.creds.username}` : ''}`, `log in again: unik hub login ${this.registry}`);
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, 'fetching a token', text);
    const body = JSON.parse(text) as { token?: string; access_token?: string };
    this.authorization = `Bearer ${body.token ?? body.access_token ?? ''}`;
  }

  private unexpected(status: number, what: string, body = ''): Error {
    const detail = body ? `: ${body.slice(0, 300).trim()}` : '';
    return unavailable('REGISTRY_ERROR', `the registry ${this.registry} answered ${status} while ${what}${detail}`);
  }
}
