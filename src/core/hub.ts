import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packedImage } from '../hub/artifact.js';
import { checkUnpacked, unpackBudget, unpackLayer } from '../hub/layer.js';
import { ANNOTATIONS, LAYOUT, MT } from '../hub/mediatypes.js';
import { badImage, checkImageConfig, checkOciManifest, isIndexType, LIMITS, mergedIndex, pickPlatform, type TagContent } from '../hub/oci-check.js';
import { archOf, defaultArch, parseArch, type Arch } from '../model/arch.js';
import { kernelImageProblem } from '../base/linux/kernel-image.js';
import { trustedRealmsFromEnv } from '../hub/realm.js';
import { formatReference, parseReference, type Reference } from '../hub/reference.js';
import { RegistryClient, type Credentials } from '../hub/registry.js';
import { failedPrecondition, invalid, isUnikError } from '../model/errors.js';
import { checkPulledManifest } from './manifest-check.js';
import type { ImageService } from './images.js';
import { newId } from './ids.js';
import { EventBus } from './events.js';
import type { UnikPaths } from '../model/paths.js';
import type { ImageRecord, ProgressEvent } from '../model/types.js';

export interface HubOptions {
  creds?: Credentials;
  /** plain HTTP to a registry that is not on this machine */
  insecure?: boolean;
  /** HTTPS token servers on other hosts that may receive the credentials; default: UNIK_TRUSTED_TOKEN_REALMS */
  trustedTokenRealms?: string[];
  /** pull: the architecture to pick from a multi-architecture image (default: the daemon host's) */
  arch?: string;
}

export interface PushResult {
  ref: string;
  /** what the tag now names: the image's manifest, or the index that holds it */
  digest: string;
  size: number;
  /** the tag's platforms, when it is a multi-architecture index */
  platforms?: string[];
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
    private readonly bus: EventBus = new EventBus(),
  ) {}

  private client(ref: Reference, o: HubOptions): RegistryClient {
    if (ref.registry === 'docker.io')
      throw invalid('NO_DOCKER_HUB', `${formatReference(ref)} names Docker Hub, which holds container images, not unikernels`, 'push unik images to an OCI registry of yours (unik hub push IMAGE REGISTRY/REPO:TAG) and pull them by that full reference');
    return new RegistryClient(ref.registry, o.creds, !!o.insecure, o.trustedTokenRealms ?? trustedRealmsFromEnv());
  }

  async login(registry: string, o: HubOptions): Promise<void> {
    await this.client(parseReference(`${registry}/x`), o).ping();
  }

  async search(registry: string, term: string, o: HubOptions): Promise<{ name: string; tags: string[] }[]> {
    const c = this.client(parseReference(`${registry}/x`), o);
    const repos = (await c.catalog()).filter((r) => r.includes(term));
    return Promise.all(repos.map(async (name) => ({ name, tags: await c.tags(name) })));
  }

  async push(image: string, refText: string, o: HubOptions, progress: (p: TransferProgress) => void = () => {}): Promise<PushResult> {
    const img = this.images.get(image);
    const arch = archOf(img.manifest.arch);
    if (!arch) throw failedPrecondition('UNSUPPORTED_ARCH', `image ${img.name} is for ${String(img.manifest.arch).slice(0, 32)}, which unik does not know`);
    // the hub's artifact has a kernel and an initramfs layer; a root disk has no place in it yet
    if (img.manifest.rootDisk)
      throw failedPrecondition('ROOT_DISK_NOT_PUSHABLE', `image ${img.name} keeps its files on a read-only root disk, which the hub cannot carry yet`, 'rebuild it with its root in the initramfs (unik.yaml rootDisk: false) to push it');
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
    const manifestDigest = `sha256:${createHash('sha256').update(art.manifestBytes).digest('hex')}`;
    // the tag may already hold this image for other architectures: they are kept beside it, in an index
    const merged = mergedIndex(await this.tagContent(client, ref.repository, ref.tag), arch, { mediaType: MT.manifest, digest: manifestDigest, size: art.manifestBytes.length }, `what ${formatReference(ref)} holds now`);
    const pushed = (r: PushResult): PushResult => {
      this.bus.emit({ type: 'image', action: 'push', id: img.id, attributes: { name: img.name, ref: r.ref, digest: r.digest } });
      return r;
    };
    if (!merged) {
      const digest = (await client.putManifest(ref.repository, ref.tag, MT.manifest, art.manifestBytes)) || manifestDigest;
      progress({ step: 'push', message: `pushed ${formatReference(ref)}`, percent: 100, bytes: total, total });
      return pushed({ ref: formatReference(ref), digest, size: total });
    }
    // the manifest by its digest first, so the index never names what the registry lacks
    await client.putManifest(ref.repository, manifestDigest, MT.manifest, art.manifestBytes);
    const digest = (await client.putManifest(ref.repository, ref.tag, MT.index, merged.index)) || `sha256:${createHash('sha256').update(merged.index).digest('hex')}`;
    progress({ step: 'push', message: `pushed ${formatReference(ref)}: an index of ${merged.platforms.join(', ')}`, percent: 100, bytes: total, total });
    return pushed({ ref: formatReference(ref), digest, size: total, platforms: merged.platforms });
  }

  /**
   * What the tag holds now, for a push to merge with: an index, or a single image and the
   * platform its config says, or nothing. (Read, then written: a concurrent push of another
   * architecture to the same tag can lose its entry; registries offer no conditional PUT.)
   */
  private async tagContent(client: RegistryClient, repo: string, tag: string): Promise<TagContent> {
    let got;
    try {
      got = await client.getManifest(repo, tag);
    } catch (e) {
      if (isUnikError(e) && e.kind === 'NotFound') return { kind: 'none' };
      throw e;
    }
    const where = `what ${repo}:${tag} holds now`;
    if (isIndexType(got.mediaType) || (!got.mediaType && /"manifests"\s*:/.test(got.body.toString('utf8', 0, 4096)))) return { kind: 'index', body: got.body };
    const m = checkOciManifest(got.body, got.mediaType, where);
    const configFile = join(this.paths.tmp, `push-config-${newId().slice(0, 16)}`);
    try {
      await client.downloadBlob(repo, m.config.digest, configFile, m.config.size);
      const config = checkImageConfig(await readFile(configFile), `${where}, its config`);
      return { kind: 'image', descriptor: { mediaType: m.mediaType, digest: got.digest, size: got.body.length }, os: config.os, architecture: config.architecture };
    } finally {
      await rm(configFile, { force: true });
    }
  }

  /**
   * Is this reference a unik image (pull it) or an ordinary container image (build from it)?
   * Told by unik's marker: the language annotation on the manifest, or layers titled unik/….
   * An index is resolved to linux/`arch` first; what cannot be told is left to the pull to refuse.
   */
  async isUnikImage(refText: string, o: HubOptions): Promise<boolean> {
    const ref = parseReference(refText);
    const client = new RegistryClient(ref.registry, o.creds, !!o.insecure, o.trustedTokenRealms ?? trustedRealmsFromEnv());
    const arch: Arch = o.arch ? parseArch(o.arch) : defaultArch();
    let got = await client.getManifest(ref.repository, ref.digest ?? ref.tag);
    if (isIndexType(got.mediaType) || (!got.mediaType && /"manifests"\s*:/.test(got.body.toString('utf8', 0, 4096)))) {
      const { entry } = pickPlatform(got.body, `the index of ${formatReference(ref)}`, arch);
      if (!entry) return false;
      got = await client.getManifest(ref.repository, entry.digest);
    }
    try {
      const m = JSON.parse(got.body.toString('utf8')) as { annotations?: Record<string, unknown>; layers?: { annotations?: Record<string, unknown> }[] };
      if (typeof m.annotations?.[ANNOTATIONS.unikLanguage] === 'string') return true;
      return Array.isArray(m.layers) && m.layers.some((l) => String(l?.annotations?.[ANNOTATIONS.title] ?? '').startsWith('unik/'));
    } catch {
      return false;
    }
  }

  /**
   * Pulls into a new image; nothing is stored unless every blob arrived whole and verified and
   * every part of the image passed its check. Everything the registry and the image say is
   * hostile until checked (src/hub/oci-check.ts, src/hub/layer.ts, ./manifest-check.ts): the
   * pull writes only inside its own folder under tmp/, and the stored image's file names, id
   * and name are unik's own, never the image's.
   */
  async pull(refText: string, name: string | undefined, force: boolean, o: HubOptions, progress: (p: TransferProgress) => void = () => {}): Promise<ImageRecord> {
    const ref = parseReference(refText);
    const refName = formatReference(ref);
    const localName = name || ref.repository.split('/').pop()!;
    const arch: Arch = o.arch ? parseArch(o.arch) : defaultArch();
    this.images.checkNameFree(localName, force);
    const client = this.client(ref, o);
    progress({ step: 'pull', message: `resolving ${refName}` });
    let got = await client.getManifest(ref.repository, ref.digest ?? ref.tag);
    if (ref.digest && got.digest !== ref.digest) throw failedPrecondition('DIGEST_MISMATCH', `the manifest of ${refName} has digest ${got.digest}`);
    if (isIndexType(got.mediaType) || (!got.mediaType && /"manifests"\s*:/.test(got.body.toString('utf8', 0, 4096)))) {
      const { entry, platforms } = pickPlatform(got.body, `the index of ${refName}`, arch);
      if (!entry) throw failedPrecondition('WRONG_ARCH', `${refName} has no linux/${arch} image (it has ${platforms.slice(0, 10).join(', ')})`, 'pull one of those with --arch');
      progress({ step: 'pull', message: `${refName} holds ${platforms.slice(0, 10).join(', ')}: taking linux/${arch}` });
      got = await client.getManifest(ref.repository, entry.digest);
      // the registry must answer with the manifest the index named, byte for byte
      if (got.digest !== entry.digest) throw failedPrecondition('DIGEST_MISMATCH', `the index of ${refName} names manifest ${entry.digest}, but the registry sent ${got.digest}`);
    }
    const manifest = checkOciManifest(got.body, got.mediaType, `the manifest of ${refName}`);

    const id = newId();
    const work = join(this.paths.tmp, `pull-${id.slice(0, 16)}`);
    const tree = join(work, 'tree');
    await mkdir(tree, { recursive: true });
    try {
      const configFile = join(work, 'config.json');
      await client.downloadBlob(ref.repository, manifest.config.digest, configFile, manifest.config.size);
      const config = checkImageConfig(await readFile(configFile), `the image config of ${refName}`);
      if (config.architecture !== arch || config.os !== 'linux')
        throw failedPrecondition('WRONG_ARCH', `${refName} is built for ${config.os}/${config.architecture}, not linux/${arch}`, o.arch ? 'pull another architecture with --arch, or push this one' : `pull it with --arch ${archOf(config.architecture) ?? config.architecture} if this host should run it emulated`);
      const total = manifest.layers.reduce((n, l) => n + l.size, 0);
      const budget = unpackBudget(total, LIMITS.imageBytes);
      let done = 0;
      for (const [n, layer] of manifest.layers.entries()) {
        const file = join(work, `layer${n}`);
        const title = (layer.annotations?.[ANNOTATIONS.title] ?? layer.digest.slice(7, 19)).replace(/[^\w./-]/g, '_');
        let last = -1;
        await client.downloadBlob(ref.repository, layer.digest, file, layer.size, (b) => {
          const pct = Math.floor(((done + b) / total) * 100);
          if (pct !== last) progress({ step: 'pull', message: title, bytes: done + b, total, percent: (last = pct) });
        });
        done += layer.size;
        await unpackLayer(file, layer.mediaType, tree, budget, `layer ${n} (${layer.digest.slice(0, 19)}) of ${refName}`);
        await rm(file);
      }
      const sizes = await checkUnpacked(tree, [LAYOUT.kernel, LAYOUT.root, LAYOUT.manifest], refName);
      const kernelProblem = kernelImageProblem(join(tree, LAYOUT.kernel), arch);
      if (kernelProblem) throw badImage(refName, `its /${LAYOUT.kernel} ${kernelProblem}`);
      const m = checkPulledManifest(await readFile(join(tree, LAYOUT.manifest), 'utf8'), {
        arch,
        id,
        name: localName,
        source: refName,
        sourceDigest: got.digest,
        kernelBytes: sizes[LAYOUT.kernel]!,
        rootBytes: sizes[LAYOUT.root]!,
      });

      // unik's own names: nothing the image says names a host path
      const stage = join(this.paths.images, `.tmp-${id}`);
      await mkdir(stage, { recursive: true });
      try {
        await rename(join(tree, LAYOUT.kernel), join(stage, 'kernel'));
        await rename(join(tree, LAYOUT.root), join(stage, 'root.cpio'));
        await writeFile(join(stage, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
        const record: ImageRecord = { id, name: localName, provider: m.provider, sizeBytes: m.kernel.sizeBytes + m.root.sizeBytes, created: m.created, manifest: m };
        await this.images.commit(stage, record, force);
        this.bus.emit({ type: 'image', action: 'pull', id, attributes: { name: localName, ref: refName, digest: got.digest } });
        progress({ step: 'pull', message: `pulled ${refName} as ${localName}`, percent: 100, bytes: total, total });
        return record;
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}
