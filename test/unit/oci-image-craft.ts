// Container images made by hand for the oci-image tests: raw tar entries (any name, type, owner),
// put together as an OCI image layout or a `docker save` archive.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Entry {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory, '6' fifo */
  type?: string;
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, '0') + '\0';

function header(e: Entry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const name = Buffer.from(e.name);
  if (name.length > 100) throw new Error('name too long for a plain ustar header');
  name.copy(h, 0);
  h.write(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(e.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(e.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
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

export function tar(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    parts.push(header(e, data.length));
    if (data.length) parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface ImageSpec {
  layers: Entry[][];
  config?: Record<string, unknown>;
  architecture?: string;
  /** gzip the layers (OCI layouts; docker archives are plain tars) */
  gzip?: boolean;
}

export function configOf(spec: ImageSpec, layerTars: Buffer[]): Buffer {
  return Buffer.from(JSON.stringify({ architecture: spec.architecture ?? 'amd64', os: 'linux', config: spec.config ?? {}, rootfs: { type: 'layers', diff_ids: layerTars.map(sha256) } }));
}

/** Writes an OCI image layout; returns the digests it wrote. Hooks let a test spoil one part. */
export function writeLayout(dir: string, spec: ImageSpec, tag = 'v1', spoil: { manifest?: (m: Buffer) => Buffer; config?: (c: Buffer) => Buffer; index?: (ix: object) => object } = {}): { manifest: string; config: string } {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer, as?: string) => {
    writeFileSync(join(dir, 'blobs', 'sha256', (as ?? sha256(b)).slice(7)), b);
    return sha256(b);
  };
  const tars = spec.layers.map(tar);
  const layers = tars.map((t) => {
    const blob = spec.gzip === false ? t : gzipSync(t);
    return { mediaType: spec.gzip === false ? 'application/vnd.oci.image.layer.v1.tar' : 'application/vnd.oci.image.layer.v1.tar+gzip', digest: put(blob), size: blob.length };
  });
  const config = configOf(spec, tars);
  const cd = sha256(config);
  put(spoil.config ? spoil.config(config) : config, cd);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers }));
  const md = sha256(manifest);
  const stored = spoil.manifest ? spoil.manifest(manifest) : manifest;
  put(stored, md);
  let index: object = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: stored.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] };
  if (spoil.index) index = spoil.index(index);
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { manifest: md, config: cd };
}

/** Writes a `docker save` archive (manifest.json, HEX.json, HEX/layer.tar). */
export function writeDockerArchive(file: string, spec: ImageSpec, repoTags = ['example/app:1'], spoilLayer?: (t: Buffer) => Buffer): void {
  const tars = spec.layers.map(tar);
  const config = configOf(spec, tars);
  const ch = sha256(config).slice(7);
  const files: Entry[] = [{ name: `${ch}.json`, data: config }];
  const layerNames: string[] = [];
  tars.forEach((t, n) => {
    const id = sha256(Buffer.from(`layer${n}`)).slice(7);
    files.push({ name: `${id}/`, type: '5' }, { name: `${id}/layer.tar`, data: spoilLayer ? spoilLayer(t) : t });
    layerNames.push(`${id}/layer.tar`);
  });
  files.push({ name: 'manifest.json', data: JSON.stringify([{ Config: `${ch}.json`, RepoTags: repoTags, Layers: layerNames }]) });
  writeFileSync(file, tar(files));
}
