// Tiny OCI images for the containerd tests, built by hand (no daemon, no network): a static
// `pause` for CRI pod sandboxes and the Go example as an ordinary container. Pushed to a local
// plain-http registry with the distribution API (monolithic blob uploads, an OCI manifest).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(import.meta.dirname, '../../../..');
const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  ExposedPorts?: Record<string, object>;
  WorkingDir?: string;
}

async function pushBlob(host: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const head = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`registry refused an upload of ${repo}: ${start.status} ${await start.text()}`);
  const url = new URL(start.headers.get('location')!, `http://${host}`);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) } });
  if (put.status !== 201) throw new Error(`blob upload of ${digest} to ${repo}: ${put.status} ${await put.text()}`);
  return digest;
}

/** Packs rootDir as one layer (owned by root) and pushes an OCI image `host/repo:tag`; returns the manifest digest. */
export async function pushOciImage(host: string, repo: string, tag: string, rootDir: string, config: ImageConfig): Promise<string> {
  const tar = execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=@0', '-C', rootDir, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  const layer = gzipSync(tar);
  const imageConfig = Buffer.from(
    JSON.stringify({
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...config },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'unik test image builder' }],
    }),
  );
  const layerDigest = await pushBlob(host, repo, layer);
  const configDigest = await pushBlob(host, repo, imageConfig);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: imageConfig.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: new Uint8Array(manifest),
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new Error(`manifest upload ${repo}:${tag}: ${res.status} ${await res.text()}`);
  return sha256(manifest);
}

/** Builds the static pause (musl-gcc) and pushes it as `host/unik-test/pause:3.9`; returns the reference. */
export async function pushPauseImage(host: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'unik-pause-'));
  try {
    const root = join(dir, 'root');
    mkdirSync(root);
    execFileSync('musl-gcc', ['-static', '-Os', '-s', '-o', join(root, 'pause'), join(ROOT, 'test', 'integration', 'pause', 'pause.c')]);
    chmodSync(join(root, 'pause'), 0o755);
    await pushOciImage(host, 'unik-test/pause', '3.9', root, { Entrypoint: ['/pause'] });
    return `${host}/unik-test/pause:3.9`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Builds examples/go-http (CGO_ENABLED=0) and pushes it as an ordinary container image `host/unik-test/go-http:runc`. */
export async function pushGoHttpImage(host: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'unik-gohttp-'));
  try {
    const root = join(dir, 'root');
    mkdirSync(root);
    execFileSync('go', ['build', '-trimpath', '-o', join(root, 'app'), '.'], {
      cwd: join(ROOT, 'examples', 'go-http'),
      env: { ...process.env, CGO_ENABLED: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await pushOciImage(host, 'unik-test/go-http', 'runc', root, { Entrypoint: ['/app'], ExposedPorts: { '8080/tcp': {} } });
    return `${host}/unik-test/go-http:runc`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
