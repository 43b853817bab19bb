// Typed HTTP client of the unik daemon API (see src/api/types.ts for the wire shapes).
import { openAsBlob } from 'node:fs';
import { basename } from 'node:path';
import { NDJSON } from '../api/types.js';
import type { BuildEvent, ErrorJson, HostCheckJson, ImageJson, InstanceJson, NetworkJson, ProviderJson, RunRequest, VolumeJson, VolumeType } from '../api/types.js';
import { dispatcherFor, type ClientTls } from './dispatcher.js';
import { UnikApiError, toUnreachable } from './errors.js';
import { requestText, type TextResponse } from './http1.js';
import { HubApi } from './hub.js';
import { ndjsonLines } from './ndjson.js';

export { DaemonUnreachableError, UnikApiError } from './errors.js';

export type BuildProgress = Extract<BuildEvent, { Progress: unknown }>['Progress'];

export interface BuildOptions {
  name: string;
  /** A .tar.gz of the application directory (see packDirectory); with fromImage docker-archive/oci, the image. */
  tarPath?: string;
  /** build from a container image: REGISTRY/REPO[:TAG], or "docker-archive" / "oci" with the image as tarPath */
  fromImage?: string;
  /** the image to take from an uploaded archive or layout */
  tag?: string;
  /** plain HTTP to a registry that is not on this machine */
  insecure?: boolean;
  /** the X-Registry-Auth header value (see encodeRegistryAuth) */
  registryAuth?: string;
  base?: string;
  language?: string;
  provider?: string;
  /** amd64 or arm64; default: the daemon host's */
  arch?: string;
  /** One string; the daemon splits it on spaces. */
  args?: string;
  mounts?: string[];
  force?: boolean;
  /** with fromImage: keep only the files the app opens while the probe (http://:PORT/PATH, tcp://:PORT) exercises it, and keep */
  slim?: boolean;
  probe?: string;
  keep?: string[];
  signal?: AbortSignal;
}

export interface CreateVolumeOptions {
  name: string;
  /** Required for an empty volume; with data the daemon picks a size that fits when omitted. */
  sizeMb?: number;
  type?: VolumeType;
  /** A .tar or .tar.gz to unpack into the volume (sent as "tarfile"); with raw, the disk image itself. */
  dataPath?: string;
  raw?: boolean;
  provider?: string;
  signal?: AbortSignal;
}

export interface LogsOptions {
  follow?: boolean;
  /** the daemon removes the instance when this stream closes, however it closes (2016's delete=true, for orchestrators) */
  deleteOnClose?: boolean;
  signal?: AbortSignal;
}

export type Query = Record<string, string | undefined>;

export interface SendOptions {
  query?: Query;
  json?: unknown;
  body?: FormData;
  accept?: string;
  /** Extra request headers, e.g. X-Registry-Auth for the hub routes. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Use the dispatcher without header/body timeouts (long builds, followed logs). */
  patient?: boolean;
}

/** Accepts `http://host:port`, `https://…` or a bare `host:port`; returns it without a trailing slash. */
export function normalizeBaseUrl(url: string): string {
  const withScheme = /^https?:\/\//i.test(url) ? url : `http://${url}`;
  return withScheme.replace(/\/+$/, '');
}

export interface ClientOptions {
  /** Sent as `Authorization: Bearer <token>`; a daemon listening beyond loopback requires it. */
  token?: string | undefined;
  /** the daemon's CA, and a client certificate for a daemon started with --tls-verify */
  tls?: ClientTls | undefined;
}

export class UnikClient {
  readonly baseUrl: string;
  readonly images: ImagesApi;
  readonly instances: InstancesApi;
  readonly volumes: VolumesApi;
  readonly networks: NetworksApi;
  readonly hub: HubApi;
  private readonly token: string | undefined;
  private readonly tls: ClientTls | undefined;
  /** made at the first call of each kind: most commands need neither (see dispatcherFor) */
  private readonly dispatchers: { quick?: Promise<object> | undefined; patient?: Promise<object> | undefined } = {};

  constructor(baseUrl: string, opts: ClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    this.token = opts.token || undefined;
    this.tls = opts.tls;
    this.images = new ImagesApi(this);
    this.instances = new InstancesApi(this);
    this.volumes = new VolumesApi(this);
    this.networks = new NetworksApi(this);
    this.hub = new HubApi(this);
  }

  availableCompilers(): Promise<string[]> {
    return this.json('GET', '/available_compilers', 200);
  }

  availableProviders(): Promise<string[]> {
    return this.json('GET', '/available_providers', 200);
  }

  /** every provider with whether it works on the daemon's host, and why (a unik addition) */
  providers(): Promise<ProviderJson[]> {
    return this.json('GET', '/providers', 200);
  }

  /** what the daemon's host has and lacks, each problem with its fix (a unik addition) */
  doctor(): Promise<HostCheckJson[]> {
    return this.json('GET', '/doctor', 200);
  }

  async describeCompiler(base: string, lang: string, provider: string): Promise<string> {
    const res = await this.send('GET', '/describe_compiler', 200, { query: { base, lang, provider } });
    return this.readText(res);
  }

  /**
   * Sends one request and checks for the one status the call expects. Network failures become
   * DaemonUnreachableError, any other status an UnikApiError carrying the daemon's error body.
   */
  async send(method: string, path: string, expect: number | number[], opts: SendOptions = {}): Promise<Response> {
    const { url, headers, body } = this.request(path, opts);
    // `dispatcher` is Node's (undici's) extension of RequestInit.
    const init: RequestInit & { dispatcher?: object } = { method, headers, body, signal: opts.signal ?? null };
    const dispatcher = await this.dispatcher(opts.patient ?? false);
    if (dispatcher) init.dispatcher = dispatcher;
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (err) {
      throw toUnreachable(this.baseUrl, err) ?? err;
    }
    await this.check(res, expect);
    return res;
  }

  /** As send, for answers read whole: a quick call to a plain-HTTP daemon goes through node:http (see http1.ts). */
  private async sendWhole(method: string, path: string, expect: number, opts: SendOptions): Promise<TextResponse> {
    if (opts.patient || opts.body || this.tls || !/^http:/i.test(this.baseUrl)) return this.send(method, path, expect, opts);
    const { url, headers, body } = this.request(path, opts);
    let res: TextResponse;
    try {
      res = await requestText(url, { method, headers, body: body as string | undefined, signal: opts.signal });
    } catch (err) {
      throw toUnreachable(this.baseUrl, err) ?? err;
    }
    await this.check(res, expect);
    return res;
  }

  private request(path: string, opts: SendOptions): { url: URL; headers: Record<string, string>; body: string | FormData | undefined } {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { ...opts.headers, accept: opts.accept ?? 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | FormData | undefined = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    return { url, headers, body };
  }

  private async check(res: TextResponse, expect: number | number[]): Promise<void> {
    const ok = Array.isArray(expect) ? expect.includes(res.status) : res.status === expect;
    if (!ok) throw await this.apiError(res);
  }

  /** one connection pool per client and kind of call; TLS material goes into each */
  private dispatcher(patient: boolean): Promise<object> | undefined {
    const kind = patient ? 'patient' : 'quick';
    if (!(kind in this.dispatchers)) this.dispatchers[kind] = dispatcherFor(patient, this.tls);
    return this.dispatchers[kind];
  }

  async json<T>(method: string, path: string, expect: number, opts: SendOptions = {}): Promise<T> {
    const res = await this.sendWhole(method, path, expect, opts);
    const text = await this.readText(res);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UnikApiError(res.status, {
        code: 'UNIK_ERR_BAD_RESPONSE',
        message: `the daemon answered ${method} ${path} with invalid JSON: ${text.slice(0, 200)}`,
      });
    }
  }

  /** Waits for a response without a body (204, or 200 with an ignored body). */
  async empty(method: string, path: string, expect: number, opts: SendOptions = {}): Promise<void> {
    const res = await this.sendWhole(method, path, expect, opts);
    await this.readText(res);
  }

  async readText(res: TextResponse): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      throw toUnreachable(this.baseUrl, err) ?? err;
    }
  }

  private async apiError(res: TextResponse): Promise<UnikApiError> {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // The status alone still says what went wrong.
    }
    try {
      const body = JSON.parse(text) as Partial<ErrorJson>;
      if (typeof body.message === 'string') {
        return new UnikApiError(res.status, {
          message: body.message,
          code: typeof body.code === 'string' ? body.code : `UNIK_ERR_HTTP_${res.status}`,
          ...(typeof body.hint === 'string' ? { hint: body.hint } : {}),
        });
      }
    } catch {
      // Not JSON: fall through and use the raw text.
    }
    const message = text.trim() || `${res.status} ${res.statusText}`.trim();
    return new UnikApiError(res.status, { message, code: `UNIK_ERR_HTTP_${res.status}` });
  }
}

const seg = encodeURIComponent;

export class ImagesApi {
  constructor(private readonly c: UnikClient) {}

  all(): Promise<ImageJson[]> {
    return this.c.json('GET', '/images', 200);
  }

  get(name: string): Promise<ImageJson> {
    return this.c.json('GET', `/images/${seg(name)}`, 200);
  }

  /** The image as a bootable disk (format: raw, qcow2, vmdk, vhd, vhdx, ova, gce), as a stream. */
  async export(name: string, format: string, firmware: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.c.send('POST', `/images/${seg(name)}/export`, 200, { query: { format, firmware }, patient: true, accept: 'application/octet-stream, application/json', ...(signal ? { signal } : {}) });
    if (!res.body) throw new Error('the daemon sent no disk');
    return res.body;
  }

  delete(name: string, force = false): Promise<void> {
    return this.c.empty('DELETE', `/images/${seg(name)}`, 204, { query: { force: String(force) } });
  }

  /**
   * Uploads the tarball (streamed from disk) and builds the image. With onEvent the daemon
   * streams NDJSON progress; without it the call waits for a plain 201.
   */
  async build(opts: BuildOptions, onEvent?: (p: BuildProgress) => void): Promise<ImageJson> {
    let form: FormData | undefined;
    if (opts.tarPath) {
      form = new FormData();
      form.append('tarfile', await openAsBlob(opts.tarPath), basename(opts.tarPath));
    }
    const query: Query = {
      fromImage: opts.fromImage,
      tag: opts.tag,
      insecure: opts.insecure ? 'true' : undefined,
      base: opts.base,
      lang: opts.language,
      provider: opts.provider,
      arch: opts.arch,
      args: opts.args,
      mounts: opts.mounts?.length ? opts.mounts.join(',') : undefined,
      force: String(opts.force ?? false),
      slim: opts.slim ? 'true' : undefined,
      probe: opts.probe,
      keep: opts.keep?.length ? opts.keep.join(',') : undefined,
    };
    const path = `/images/${seg(opts.name)}/create`;
    const common: SendOptions = { query, patient: true };
    if (form) common.body = form;
    if (opts.registryAuth) common.headers = { 'X-Registry-Auth': opts.registryAuth };
    if (opts.signal) common.signal = opts.signal;
    if (!onEvent) return this.c.json('POST', path, 201, common);

    const res = await this.c.send('POST', path, [200, 201], { ...common, accept: NDJSON });
    // A daemon that ignores Accept answers the plain way (201 + image); take that too.
    if (res.status === 201) return JSON.parse(await this.c.readText(res)) as ImageJson;
    return this.readBuildStream(res, onEvent);
  }

  private async readBuildStream(res: Response, onEvent: (p: BuildProgress) => void): Promise<ImageJson> {
    if (!res.body) throw streamEnded();
    try {
      for await (const line of ndjsonLines(res.body)) {
        const event = line as Partial<Record<'Progress' | 'Image' | 'Error', unknown>>;
        if (event.Progress) onEvent(event.Progress as BuildProgress);
        else if (event.Image) return event.Image as ImageJson;
        else if (event.Error) {
          const e = event.Error as ErrorJson & { Status?: number };
          throw new UnikApiError(e.Status ?? 500, e);
        }
      }
    } catch (err) {
      throw toUnreachable(this.c.baseUrl, err) ?? err;
    }
    throw streamEnded();
  }
}

function streamEnded(): UnikApiError {
  return new UnikApiError(502, {
    code: 'UNIK_ERR_BUILD_STREAM_ENDED',
    message: 'the daemon ended the build stream without reporting a result',
    hint: 'check the daemon log; it may have been restarted during the build',
  });
}

export class InstancesApi {
  constructor(private readonly c: UnikClient) {}

  all(): Promise<InstanceJson[]> {
    return this.c.json('GET', '/instances', 200);
  }

  /** `id` may be a name, a full id or a unique id prefix. */
  get(id: string): Promise<InstanceJson> {
    return this.c.json('GET', `/instances/${seg(id)}`, 200);
  }

  run(req: RunRequest): Promise<InstanceJson> {
    return this.c.json('POST', '/instances/run', 201, { json: req });
  }

  start(id: string): Promise<void> {
    return this.c.empty('POST', `/instances/${seg(id)}/start`, 200);
  }

  stop(id: string, timeoutSec?: number): Promise<void> {
    const query = { timeout: timeoutSec === undefined ? undefined : String(timeoutSec) };
    return this.c.empty('POST', `/instances/${seg(id)}/stop`, 200, { query });
  }

  delete(id: string, force = false): Promise<void> {
    return this.c.empty('DELETE', `/instances/${seg(id)}`, 204, { query: { force: String(force) } });
  }

  /** The log text as a byte stream; with follow it stays open until `signal` aborts. */
  async logs(id: string, opts: LogsOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const query = { follow: String(opts.follow ?? false), delete: String(opts.deleteOnClose ?? false) };
    const send: SendOptions = { query, accept: 'text/plain', patient: opts.follow ?? false };
    if (opts.signal) send.signal = opts.signal;
    const res = await this.c.send('GET', `/instances/${seg(id)}/logs`, 200, send);
    if (!res.body) return new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() });
    return res.body;
  }
}

export class VolumesApi {
  constructor(private readonly c: UnikClient) {}

  all(): Promise<VolumeJson[]> {
    return this.c.json('GET', '/volumes', 200);
  }

  /** `name` may be a name, a full id or a unique id prefix. */
  get(name: string): Promise<VolumeJson> {
    return this.c.json('GET', `/volumes/${seg(name)}`, 200);
  }

  /**
   * Creates an empty volume of `sizeMb`, or one holding `dataPath` (streamed from disk as the
   * multipart field "tarfile"). The parameters always go in the query string, as in 2016.
   */
  async create(opts: CreateVolumeOptions): Promise<VolumeJson> {
    const query: Query = {
      size: opts.sizeMb === undefined ? undefined : String(opts.sizeMb),
      type: opts.type,
      provider: opts.provider,
      raw: String(opts.raw ?? false),
    };
    const send: SendOptions = { query };
    if (opts.signal) send.signal = opts.signal;
    if (opts.dataPath !== undefined) {
      const form = new FormData();
      form.append('tarfile', await openAsBlob(opts.dataPath), basename(opts.dataPath));
      send.body = form;
      send.patient = true; // big uploads, and the daemon unpacks them before it answers
    }
    return this.c.json('POST', `/volumes/${seg(opts.name)}`, 201, send);
  }

  delete(name: string, force = false): Promise<void> {
    return this.c.empty('DELETE', `/volumes/${seg(name)}`, 204, { query: { force: String(force) } });
  }

  /** Attaches the volume to a stopped instance; returns the daemon's plain-text answer (the volume name). */
  async attach(volume: string, instance: string, mountPoint: string): Promise<string> {
    const path = `/volumes/${seg(volume)}/attach/${seg(instance)}`;
    const res = await this.c.send('POST', path, 202, { query: { mount: mountPoint }, accept: 'text/plain, application/json' });
    return (await this.c.readText(res)).trim();
  }

  /** Returns the daemon's plain-text answer (the volume name). */
  async detach(volume: string): Promise<string> {
    const res = await this.c.send('POST', `/volumes/${seg(volume)}/detach`, 202, { accept: 'text/plain, application/json' });
    return (await this.c.readText(res)).trim();
  }
}

export interface CreateNetworkOptions {
  name: string;
  subnet?: string;
  gateway?: string;
  labels?: Record<string, string>;
}

/** Networks, through the daemon's network routes (the Docker Engine API's shape). */
export class NetworksApi {
  constructor(private readonly c: UnikClient) {}

  all(): Promise<NetworkJson[]> {
    return this.c.json('GET', '/networks', 200);
  }

  /** `ref` may be a name, a full id or a unique id prefix. */
  get(ref: string): Promise<NetworkJson> {
    return this.c.json('GET', `/networks/${seg(ref)}`, 200);
  }

  async create(o: CreateNetworkOptions): Promise<NetworkJson> {
    const ipam = o.subnet || o.gateway ? { Config: [{ ...(o.subnet ? { Subnet: o.subnet } : {}), ...(o.gateway ? { Gateway: o.gateway } : {}) }] } : undefined;
    const made = await this.c.json<{ Id: string }>('POST', '/networks/create', 201, { json: { Name: o.name, Driver: 'bridge', ...(ipam ? { IPAM: ipam } : {}), Labels: o.labels ?? {} } });
    return this.get(made.Id);
  }

  delete(ref: string): Promise<void> {
    return this.c.empty('DELETE', `/networks/${seg(ref)}`, 204);
  }

  /** Moves a stopped instance onto the network. */
  connect(network: string, instance: string): Promise<void> {
    return this.c.empty('POST', `/networks/${seg(network)}/connect`, 200, { json: { Container: instance } });
  }

  /** Moves a stopped instance off the network, to user-mode networking. */
  disconnect(network: string, instance: string): Promise<void> {
    return this.c.empty('POST', `/networks/${seg(network)}/disconnect`, 200, { json: { Container: instance } });
  }
}
