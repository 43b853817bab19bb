import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packedImage } from '../hub/artifact.js';
import { LAYOUT, MT, type OciManifest } from '../hub/mediatypes.js';
import { formatReference, parseReference, type Reference } from '../hub/reference.js';
import { RegistryClient, type Credentials } from '../hub/registry.js';
import { failedPrecondition, invalid } from './errors.js';
import type { ImageService } from './images.js';
import { newId } from './ids.js';
import type { UnikPaths } from './paths.js';
import { unpack } from './tarball.js';
import type { ImageManifest, ImageRecord, ProgressEvent } from './types.js';

export interface HubOptions {
  creds?: Credentials;
  /** plain HTTP to a registry that is not on this machine */
  insecure?: boolean;
}

export interface TransferProgress extends ProgressEvent {
  bytes?: number;
  total?: number;
}

/**
 * The hub is any OCI registry: unik images travel as OCI images (see src/hub/artifact.ts). The
 * daemon moves the bytes; credentials come with each request and are never stored here.
 */
export class HubService {
  constructor(
    private readonly paths: UnikPaths,
    private readonly images: ImageService,
  ) {}

  private client(ref: Reference, o: HubOptions): RegistryClient {
    if (ref.registry === 'docker.io')
      throw invalid('NO_DOCKER_HUB', `${formatReference(ref)} names Docker Hub, which holds container images, not unikernels`, 'push unik images to an OCI registry of yours (unik hub push IMAGE REGISTRY/REPO:TAG) and pull them by that full reference');
    return new RegistryClient(ref.registry, o.creds, !!o.insecure);
  }

  async login(registry: string, o: HubOptions): Promise<void> {
    await this.client(parseReference(`${registry}/x`), o).ping();
  }

  async search(registry: string, term: string, o: HubOptions): Promise<{ name: string; tags: string[] }[]> {
    const c = this.client(parseReference(`${registry}/x`), o);
    const repos = (await c.catalog()).filter((r) => r.includes(term));
    return Promise.all(repos.map(async (name) => ({ name, tags: await c.tags(name) })));
  }

  async push(image: string, refText: string, o: HubOptions, progress: (p: TransferProgress) => void = () => {}): Promise<{ ref: string; digest: string; size: number }> {
    const img = this.images.get(image);
    const ref = parseReference(refText);
    if (ref.digest) throw invalid('PUSH_BY_DIGEST', 'push to a tag, not a digest');
    const client = this.client(ref, o);
    progress({ step: 'pack', message: `packing ${img.name} as an OCI image (once per image)` });
    const art = await packedImage(this.images.dir(img), img.manifest);
    const blobs = [...art.layers, art.config];
    const total = blobs.reduce((n, b) => n + b.size, 0);
    let sent = 0;
    for (const b of blobs) {
      const name = b.annotations?.['org.opencontainers.image.title'] ?? 'config';
      if (await client.blobExists(ref.repository, b.digest)) {
        sent += b.size;
        progress({ step: 'push', message: `${name}: already there (${b.digest.slice(7, 19)})`, bytes: sent, total, percent: Math.floor((sent / total) * 100) });
        continue;
      }
      let last = -1;
      await client.uploadBlob(ref.repository, b.digest, b.file, (done) => {
        const pct = Math.floor(((sent + done) / total) * 100);
        if (pct !== last) progress({ step: 'push', message: name, bytes: sent + done, total, percent: (last = pct) });
      });
      sent += b.size;
    }
    const digest = (await client.putManifest(ref.repository, ref.tag, MT.manifest, art.manifestBytes)) || `sha256:${createHash('sha256').update(art.manifestBytes).digest('hex')}`;
    progress({ step: 'push', message: `pushed ${formatReference(ref)}`, percent: 100, bytes: total, total });
    return { ref: formatReference(ref), digest, size: total };
  }

  /** Pulls into a new image; nothing is stored unless every blob arrived whole and verified. */
  async pull(refText: string, name: string | undefined, force: boolean, o: HubOptions, progress: (p: TransferProgress) => void = () => {}): Promise<ImageRecord> {
    const ref = parseReference(refText);
    const localName = name || ref.repository.split('/').pop()!;
    this.images.checkNameFree(localName, force);
    const client = this.client(ref, o);
    progress({ step: 'pull', message: `resolving ${formatReference(ref)}` });
    let got = await client.getManifest(ref.repository, ref.digest ?? ref.tag);
    if (ref.digest && got.digest !== ref.digest) throw failedPrecondition('DIGEST_MISMATCH', `the manifest of ${formatReference(ref)} has digest ${got.digest}`);
    if (got.mediaType === MT.index || got.mediaType === MT.dockerList) {
      const index = JSON.parse(got.body.toString()) as { manifests: { digest: string; platform?: { architecture: string; os: string } }[] };
      const mine = index.manifests.find((m) => m.platform?.architecture === 'amd64' && m.platform.os === 'linux');
      if (!mine) throw failedPrecondition('WRONG_ARCH', `${formatReference(ref)} has no linux/amd64 image (it has ${index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ')})`);
      got = await client.getManifest(ref.repository, mine.digest);
    }
    const manifest = JSON.parse(got.body.toString()) as OciManifest;
    if (!manifest.layers || !manifest.config) throw invalid('NOT_AN_IMAGE', `${formatReference(ref)} is not an OCI image manifest`);

    const id = newId();
    const work = join(this.paths.tmp, `pull-${id.slice(0, 16)}`);
    const tree = join(work, 'tree');
    await mkdir(tree, { recursive: true });
    try {
      const configFile = join(work, 'config.json');
      await client.downloadBlob(ref.repository, manifest.config.digest, configFile, manifest.config.size);
      const config = JSON.parse(await readFile(configFile, 'utf8')) as { architecture?: string; os?: string };
      if (config.architecture !== 'amd64' || config.os !== 'linux')
        throw failedPrecondition('WRONG_ARCH', `${formatReference(ref)} is built for ${config.os}/${config.architecture}; this host runs linux/amd64`, 'build or push an amd64 image');
      const total = manifest.layers.reduce((n, l) => n + l.size, 0);
      let done = 0;
      for (const [n, layer] of manifest.layers.entries()) {
        if (layer.mediaType !== MT.layer && layer.mediaType !== 'application/vnd.oci.image.layer.v1.tar')
          throw invalid('NOT_A_UNIK_IMAGE', `${formatReference(ref)} has a layer of type ${layer.mediaType}: it is not a unik image`);
        const file = join(work, `layer${n}`);
        let last = -1;
        await client.downloadBlob(ref.repository, layer.digest, file, layer.size, (b) => {
          const pct = Math.floor(((done + b) / total) * 100);
          if (pct !== last) progress({ step: 'pull', message: layer.annotations?.['org.opencontainers.image.title'] ?? layer.digest.slice(7, 19), bytes: done + b, total, percent: (last = pct) });
        });
        done += layer.size;
        await unpack(file, tree);
        await rm(file);
      }
      for (const f of [LAYOUT.kernel, LAYOUT.root, LAYOUT.manifest])
        if (!existsSync(join(tree, f))) throw invalid('NOT_A_UNIK_IMAGE', `${formatReference(ref)} has no /${f}: it is not a unik image`, 'pull images pushed with unik hub push');
      const src = JSON.parse(await readFile(join(tree, LAYOUT.manifest), 'utf8')) as ImageManifest;
      if (src.schemaVersion !== 1 || src.arch !== 'x86_64') throw failedPrecondition('WRONG_ARCH', `${formatReference(ref)} holds a ${src.arch} unikernel; this host runs x86_64`);

      const stage = join(this.paths.images, `.tmp-${id}`);
      await mkdir(stage, { recursive: true });
      await rename(join(tree, LAYOUT.kernel), join(stage, src.kernel.file));
      await rename(join(tree, LAYOUT.root), join(stage, src.root.file));
      const m: ImageManifest = { ...src, id, name: localName, source: formatReference(ref), sourceDigest: got.digest };
      await writeFile(join(stage, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
      const sizeBytes = (await stat(join(stage, m.kernel.file))).size + (await stat(join(stage, m.root.file))).size;
      const record: ImageRecord = { id, name: localName, provider: m.provider, sizeBytes, created: m.created, manifest: m };
      try {
        await this.images.commit(stage, record, force);
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
      progress({ step: 'pull', message: `pulled ${formatReference(ref)} as ${localName}`, percent: 100, bytes: total, total });
      return record;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}
