import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { failedPrecondition, internal, notFound, unauthenticated, unavailable } from '../model/errors.js';
import { followRedirects, type HopRequest } from './follow.js';
import { MANIFEST_ACCEPT } from './mediatypes.js';
import { checkDigest, LIMITS } from './oci-check.js';
import { checkRealm, untrustedRealm } from './realm.js';
import { declaredLength, readCapped, snippet } from './read-capped.js';
import { registryBase } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

/** Bytes moved so far for one blob; called often, so keep it cheap. */
export type BytesFn = (done: number, total: number) => void;

type Method = HopRequest['method'];

/** Catalog, tag lists and token answers are small: a registry that sends more is cut off. */
const SMALL_ANSWER = 4 << 20;

/**
 * A client of the OCI distribution API for one registry: Basic auth, or the Bearer token flow
 * (a 401 with WWW-Authenticate: Bearer realm=…, service=…, scope=… is answered by fetching a
 * token from the realm, with the credentials only if the realm may have them: src/hub/realm.ts),
 * blob uploads in the POST-then-PUT form every registry honours, and downloads verified by
 * size and digest. Redirects are followed by src/hub/follow.ts, never with the credentials to
 * another origin. Every answer is read with a size cap.
 */
export class RegistryClient {
  private readonly base: string;
  private readonly origin: string;
  private authorization?: string;

  constructor(
    readonly registry: string,
    private readonly creds: Credentials | undefined,
    insecure: boolean,
    /** token realms on other hosts that may receive the credentials (HTTPS only) */
    private readonly trustedRealms: string[] = [],
  ) {
    this.base = registryBase(registry, insecure);
    this.origin = new URL(this.base).origin;
  }

  /** Checks the credentials (GET /v2/), as `hub login` does. */
  async ping(): Promise<void> {
    const { res } = await this.send('GET', '/v2/', { scope: 'registry:catalog:*' });
    await res.body.dump();
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, 'GET /v2/');
  }

  async blobExists(repo: string, digest: string): Promise<boolean> {
    const { res } = await this.send('HEAD', `/v2/${repo}/blobs/${checkDigest(digest, 'a blob')}`, { scope: `repository:${repo}:pull,push` });
    await res.body.dump();
    return res.statusCode === 200;
  }

  async uploadBlob(repo: string, digest: string, file: string, onBytes?: BytesFn): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const { res: start } = await this.send('POST', `/v2/${repo}/blobs/uploads/`, { scope });
    await start.body.dump();
    if (start.statusCode !== 202) throw this.unexpected(start.statusCode, `starting an upload to ${repo}`);
    const location = new URL(String(start.headers.location), this.base);
    // the image's bytes (and the login) go to the registry itself, not to where it points
    if (location.origin !== this.origin) throw failedPrecondition('REGISTRY_REDIRECT', `the registry ${this.registry} asked for the upload to go to ${location.origin}, another host; unik did not send it`, 'check the registry address');
    location.searchParams.set('digest', checkDigest(digest, 'a blob'));
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
    const { res: put } = await this.send('PUT', location.pathname + location.search, { scope, body, headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } });
    const text = await snippet(put.body);
    if (put.statusCode !== 201) throw this.unexpected(put.statusCode, `uploading ${digest}`, text);
  }

  async putManifest(repo: string, tag: string, mediaType: string, body: Buffer): Promise<string> {
    const { res } = await this.send('PUT', `/v2/${repo}/manifests/${tag}`, { scope: `repository:${repo}:pull,push`, body, headers: { 'content-type': mediaType } });
    const text = await snippet(res.body);
    if (res.statusCode !== 201) throw this.unexpected(res.statusCode, `storing the manifest of ${repo}:${tag}`, text);
    const digest = String(res.headers['docker-content-digest'] ?? '');
    return /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : '';
  }

  /** A manifest or index, read whole but never over OCI's 4 MiB; its digest is computed here, not taken from a header. */
  async getManifest(repo: string, reference: string): Promise<{ mediaType: string; body: Buffer; digest: string }> {
    if (reference.startsWith('sha256:')) checkDigest(reference, `${repo}@${reference.slice(0, 80)}`);
    const { res, url } = await this.send('GET', `/v2/${repo}/manifests/${reference}`, { scope: `repository:${repo}:pull`, headers: { accept: MANIFEST_ACCEPT } });
    if (res.statusCode === 404) {
      await res.body.dump();
      throw notFound('MANIFEST_UNKNOWN', `${this.registry}/${repo}:${reference} was not found`, 'check the repository and tag (unik hub search REGISTRY)');
    }
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, `fetching ${repo}:${reference}`, await this.errorText(res, url));
    const tooLarge = () => failedPrecondition('MANIFEST_TOO_LARGE', `the manifest of ${this.registry}/${repo}:${reference} is over ${LIMITS.manifestBytes} bytes, the OCI limit; unik stopped reading it`, 'the pull was refused and nothing was stored');
    if ((declaredLength(res.headers) ?? 0) > LIMITS.manifestBytes) {
      res.body.destroy();
      throw tooLarge();
    }
    const body = await readCapped(res.body, LIMITS.manifestBytes, tooLarge);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    return { mediaType: String(res.headers['content-type'] ?? '').split(';')[0]!.trim(), body, digest };
  }

  /**
   * Streams a blob to a file, hashing as it goes. It is cut off as soon as it passes the size
   * its descriptor declared; a size or digest that does not match is refused.
   */
  async downloadBlob(repo: string, digest: string, file: string, expectedSize: number, onBytes?: BytesFn): Promise<void> {
    checkDigest(digest, `a blob of ${repo}`);
    if (!Number.isSafeInteger(expectedSize) || expectedSize <= 0) throw internal('BLOB_SIZE', `blob ${digest} has no valid size`);
    const { res, url } = await this.send('GET', `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull` });
    if (res.statusCode !== 200) {
      const text = await this.errorText(res, url);
      if (res.statusCode === 404) throw notFound('BLOB_UNKNOWN', `blob ${digest} of ${repo} is missing from ${this.registry}`);
      throw this.unexpected(res.statusCode, `fetching blob ${digest}`, text);
    }
    const tooLarge = (n: number | string) =>
      failedPrecondition('BLOB_TOO_LARGE', `blob ${digest} of ${this.registry}/${repo} is ${n} bytes, more than the ${expectedSize} its manifest declares; unik stopped reading it`, 'the pull was refused and nothing was stored');
    const declared = declaredLength(res.headers);
    if (declared !== undefined && declared > expectedSize) {
      res.body.destroy();
      throw tooLarge(declared);
    }
    const hash = createHash('sha256');
    let done = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        done += chunk.length;
        if (done > expectedSize) return cb(tooLarge(`over ${expectedSize}`));
        hash.update(chunk);
        onBytes?.(done, expectedSize);
        cb(null, chunk);
      },
    });
    await pipeline(res.body, counter, createWriteStream(file, { mode: 0o600 }));
    if (done !== expectedSize)
      throw failedPrecondition('BLOB_SIZE_MISMATCH', `blob ${digest} of ${this.registry}/${repo} is ${done} bytes; its manifest declares ${expectedSize}`, 'the pull was refused and nothing was stored');
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest)
      throw failedPrecondition('DIGEST_MISMATCH', `blob ${digest} of ${this.registry}/${repo} arrived with digest ${got}: the registry holds corrupt data`, 'the pull was refused and nothing was stored; push the image again');
  }

  async catalog(): Promise<string[]> {
    const { res } = await this.send('GET', '/v2/_catalog?n=1000', { scope: 'registry:catalog:*' });
    const text = await this.smallJson(res, 'listing the catalog');
    const list = (JSON.parse(text) as { repositories?: unknown }).repositories;
    return Array.isArray(list) ? list.filter((r): r is string => typeof r === 'string') : [];
  }

  async tags(repo: string): Promise<string[]> {
    const { res } = await this.send('GET', `/v2/${repo}/tags/list`, { scope: `repository:${repo}:pull` });
    if (res.statusCode === 404) {
      await res.body.dump();
      return [];
    }
    const text = await this.smallJson(res, `listing the tags of ${repo}`);
    const list = (JSON.parse(text) as { tags?: unknown }).tags;
    return Array.isArray(list) ? list.filter((t): t is string => typeof t === 'string') : [];
  }

  private async smallJson(res: Dispatcher.ResponseData, what: string): Promise<string> {
    const tooLarge = () => failedPrecondition('REGISTRY_ANSWER_TOO_LARGE', `the registry ${this.registry} sent over ${SMALL_ANSWER} bytes while ${what}`);
    const text = (await readCapped(res.body, SMALL_ANSWER, tooLarge)).toString('utf8');
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, what, text);
    try {
      JSON.parse(text);
    } catch {
      throw this.unexpected(res.statusCode, `${what} (not JSON)`);
    }
    return text;
  }

  /** An error body for a message: only a registry's own, never what a redirect target said. */
  private async errorText(res: Dispatcher.ResponseData, url: URL): Promise<string> {
    if (url.origin !== this.origin) {
      await res.body.dump().catch(() => {});
      return '';
    }
    return snippet(res.body);
  }

  /** One request (redirects followed), authenticating once when the registry asks (401) and retrying. */
  private async send(method: Method, path: string, opts: { scope: string; body?: Dispatcher.DispatchOptions['body']; headers?: Record<string, string> }) {
    const attempt = () =>
      followRedirects(new URL(this.base + path), { method, headers: opts.headers ?? {}, body: opts.body, authorization: this.authorization }, this.origin, this.registry, (url, o) =>
        request(url, o).catch((e: Error & { code?: string }) => {
          const where = url.origin === this.origin ? `the registry ${this.registry}` : `${url.host}, where the registry ${this.registry} redirected`;
          throw unavailable('REGISTRY_UNREACHABLE', `cannot reach ${where} (${e.code ?? e.message})`, 'check that it runs and the address is right (HTTP is used only for 127.0.0.1/localhost, or with --insecure)', e);
        }),
      );
    let got = await attempt();
    // only the registry itself may ask for the login; a storage host's 401 is just an error
    if (got.res.statusCode !== 401 || got.url.origin !== this.origin) return got;
    const challenge = String(got.res.headers['www-authenticate'] ?? '').slice(0, 4096);
    await got.res.body.dump();
    if (opts.body && typeof (opts.body as { pipe?: unknown }).pipe === 'function') {
      // a stream body cannot be sent twice: authenticate first (HEAD), then the caller's upload
      throw internal('AUTH_ORDER', 'authentication was requested in the middle of an upload');
    }
    await this.authenticate(challenge, opts.scope);
    got = await attempt();
    if (got.res.statusCode === 401 && got.url.origin === this.origin) {
      await got.res.body.dump();
      throw unauthenticated('REGISTRY_DENIED', `the registry ${this.registry} refused ${this.creds ? `the credentials of ${this.creds.username}` : 'an anonymous request'}`, `log in: unik hub login ${this.registry}`);
    }
    return got;
  }

  private async authenticate(challenge: string, scope: string): Promise<void> {
    const basic = this.creds ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` : undefined;
    if (/^Basic/i.test(challenge)) {
      if (!basic) throw unauthenticated('REGISTRY_LOGIN_REQUIRED', `the registry ${this.registry} requires a login`, `unik hub login ${this.registry}`);
      this.authorization = basic;
      return;
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (!/^Bearer/i.test(challenge) || !params.realm) throw unauthenticated('REGISTRY_AUTH', `the registry ${this.registry} asks for an authentication unik does not know: ${challenge.slice(0, 200) || '(none)'}`);
    const { url, sendCredentials } = checkRealm(params.realm, this.base, this.trustedRealms, this.registry);
    // credentials the realm may not have: refused, not silently dropped (an anonymous token
    // would fail later with a confusing "denied"); without credentials, asking anonymously leaks nothing
    if (basic && !sendCredentials) throw untrustedRealm(url, this.registry);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope || scope);
    const res = await request(url, { headers: basic ? { authorization: basic } : {}, maxRedirections: 0, headersTimeout: 30_000, bodyTimeout: 30_000 }).catch((e: Error) => {
      throw unavailable('TOKEN_SERVER_UNREACHABLE', `cannot reach the token server ${url.origin} of ${this.registry}: ${e.message}`);
    });
    res.body.on('error', () => {});
    const tooLarge = () => failedPrecondition('REGISTRY_ANSWER_TOO_LARGE', `the token server ${url.origin} of ${this.registry} sent over ${SMALL_ANSWER} bytes`);
    const text = (await readCapped(res.body, SMALL_ANSWER, tooLarge)).toString('utf8');
    if (res.statusCode === 401 || res.statusCode === 403)
      throw unauthenticated('REGISTRY_DENIED', `the registry ${this.registry} refused ${this.creds ? `the credentials of ${this.creds.username}` : 'an anonymous request'}`, `log in${this.creds ? ' again' : ''}: unik hub login ${this.registry}`);
    if (res.statusCode !== 200) throw this.unexpected(res.statusCode, 'fetching a token', text.slice(0, 300));
    let token: unknown;
    try {
      const body = JSON.parse(text) as { token?: unknown; access_token?: unknown };
      token = body.token ?? body.access_token;
    } catch {
      token = undefined;
    }
    // the token goes into a header: printable ASCII only
    if (typeof token !== 'string' || !/^[\x21-\x7e]{1,16384}$/.test(token)) throw this.unexpected(res.statusCode, 'fetching a token (no usable token in the answer)');
    this.authorization = `Bearer ${token}`;
  }

  private unexpected(status: number, what: string, body = ''): Error {
    const detail = body ? `: ${body.slice(0, 300).trim()}` : '';
    return unavailable('REGISTRY_ERROR', `the registry ${this.registry} answered ${status} while ${what}${detail}`);
  }
}
