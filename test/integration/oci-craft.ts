// Crafting hostile OCI images by hand: raw tar entries (any name, any type), gzip, and the
// plain distribution API calls (PUT blobs and manifests) a test needs to push them to a real
// registry; plus a small HTTP front that stands between the daemon and a registry, records
// what it is sent and can answer some paths itself (redirects, crafted bodies).
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createGzip, gzipSync } from 'node:zlib';

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface TarEntry {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory, '6' fifo */
  type?: string;
  data?: Buffer;
  linkname?: string;
  mode?: number;
  /** the size the header declares (defaults to data's length) */
  size?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header, written by hand so that any name or type can be put in it. */
export function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(512);
  const name = Buffer.from(e.name);
  if (name.length > 100) throw new Error('name too long for a plain ustar header');
  name.copy(h, 0);
  h.write(octal(e.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(e.size ?? e.data?.length ?? 0, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.fill(' ', 148, 156);
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.linkname) h.write(e.linkname, 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

export function tarOf(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    if (e.data?.length) parts.push(e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const gz = (b: Buffer): Buffer => gzipSync(b, { level: 9 });

/** A gzip'd tar with one file of `bytes` zeros: a few hundred KiB on the wire, `bytes` unpacked. */
export async function gzipBomb(name: string, bytes: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => gzip.on('end', r));
  const write = (b: Buffer) => new Promise<void>((r) => (gzip.write(b) ? r() : gzip.once('drain', () => r())));
  await write(tarHeader({ name, size: bytes }));
  const chunk = Buffer.alloc(1 << 20);
  for (let left = bytes; left > 0; left -= chunk.length) await write(left >= chunk.length ? chunk : chunk.subarray(0, left));
  await write(Buffer.alloc(1024));
  gzip.end();
  await done;
  return Buffer.concat(out);
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The plain distribution API against a registry at `host` (HTTP, optional Basic login). */
export class OciClient {
  constructor(
    readonly host: string,
    private readonly basic?: { user: string; pass: string },
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, ...(this.basic ? { authorization: `Basic ${Buffer.from(`${this.basic.user}:${this.basic.pass}`).toString('base64')}` } : {}) };
  }

  async getManifest(repo: string, ref: string): Promise<{ body: Buffer; json: any }> {
    const res = await fetch(`http://${this.host}/v2/${repo}/manifests/${ref}`, { headers: this.headers({ accept: 'application/vnd.oci.image.manifest.v1+json' }) });
    if (res.status !== 200) throw new Error(`GET manifest ${repo}:${ref}: ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    return { body, json: JSON.parse(body.toString()) };
  }

  async getBlob(repo: string, digest: string): Promise<Buffer> {
    const res = await fetch(`http://${this.host}/v2/${repo}/blobs/${digest}`, { headers: this.headers() });
    if (res.status !== 200) throw new Error(`GET blob ${digest}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  /** POST then PUT ?digest=, as every registry takes it; returns a descriptor of the bytes. */
  async putBlob(repo: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = sha256(bytes);
    const start = await fetch(`http://${this.host}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: this.headers() });
    if (start.status !== 202) throw new Error(`starting an upload: ${start.status}`);
    const loc = new URL(start.headers.get('location')!, `http://${this.host}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(bytes), headers: this.headers({ 'content-type': 'application/octet-stream' }) });
    if (put.status !== 201) throw new Error(`uploading a blob: ${put.status} ${await put.text()}`);
    return { mediaType, digest, size: bytes.length };
  }

  async putManifest(repo: string, tag: string, manifest: unknown, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<{ status: number; text: string }> {
    const body = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const res = await fetch(`http://${this.host}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: new Uint8Array(body), headers: this.headers({ 'content-type': mediaType }) });
    return { status: res.status, text: await res.text() };
  }
}

export interface Seen {
  method: string;
  url: string;
  authorization?: string;
  headers: Record<string, string | string[] | undefined>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/**
 * An HTTP server on 127.0.0.1 (or another loopback address) that records every request, lets
 * `handle` answer it, and otherwise proxies it to `upstream` (host:port) unchanged.
 */
export class Front {
  port = 0;
  readonly seen: Seen[] = [];
  handle: Handler = () => false;
  private server?: Server;

  constructor(
    private readonly upstream?: string,
    readonly address = '127.0.0.1',
  ) {}

  get host(): string {
    return `${this.address}:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((r) => this.server!.listen(0, this.address, r));
    this.port = (this.server!.address() as { port: number }).port;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, headers: { ...req.headers } });
    try {
      if (await this.handle(req, res)) return;
    } catch (e) {
      res.writeHead(500).end(String(e));
      return;
    }
    if (!this.upstream) {
      res.writeHead(404).end();
      return;
    }
    const [host, port] = this.upstream.split(':');
    const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: this.upstream } }, (ur) => {
      const headers = { ...ur.headers };
      // a registry names its own address in Location: keep the client talking to the front
      if (typeof headers.location === 'string') headers.location = headers.location.replace(`http://${this.upstream}`, `http://${this.host}`);
      res.writeHead(ur.statusCode ?? 502, headers);
      ur.pipe(res);
    });
    up.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(up);
  }

  stop(): Promise<void> {
    return new Promise((r) => {
      this.server?.closeAllConnections();
      this.server?.close(() => r());
    });
  }
}
