import { failedPrecondition, type UnikError } from '../model/errors.js';
import { MT, type Descriptor, type OciManifest } from './mediatypes.js';

// Everything a registry answers is hostile until checked here: shapes, media types, digests,
// sizes. Only what passed is used to build a URL, a file name or a size limit.

const MiB = 1 << 20;
const GiB = 1 << 30;

export const LIMITS = {
  /** a manifest or index body (OCI distribution's own limit) */
  manifestBytes: 4 * MiB,
  /** the image config blob */
  configBytes: 1 * MiB,
  /** kernel + root: what a unik image may hold, unpacked or not */
  imageBytes: 2 * GiB,
  layers: 16,
  indexEntries: 256,
} as const;

export const DIGEST = /^sha256:[0-9a-f]{64}$/;

const MANIFEST_TYPES: string[] = [MT.manifest, MT.dockerManifest];
const INDEX_TYPES: string[] = [MT.index, MT.dockerList];
const CONFIG_TYPES: string[] = [MT.config, 'application/vnd.docker.container.image.v1+json'];
export const LAYER_TYPES: string[] = [MT.layer, 'application/vnd.oci.image.layer.v1.tar', 'application/vnd.docker.image.rootfs.diff.tar.gzip'];

/** The refusal for anything a registry or an image got wrong; `where` names the part. */
export function badImage(where: string, problem: string): UnikError {
  return failedPrecondition('BAD_IMAGE', `${where}: ${problem}`, 'unik refused the image and stored nothing; pull only images pushed with unik hub push from a registry you trust');
}

export function checkDigest(value: unknown, where: string): string {
  if (typeof value !== 'string' || !DIGEST.test(value)) throw badImage(where, `the digest ${JSON.stringify(value)?.slice(0, 100)} is not sha256:<64 hex digits>`);
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(body: Buffer, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw badImage(where, 'is not valid JSON');
  }
  if (!isObject(v)) throw badImage(where, 'is not a JSON object');
  return v;
}

function checkDescriptor(v: unknown, where: string, types: string[], maxSize: number, bad: (where: string, problem: string) => Error = badImage): Descriptor {
  if (!isObject(v)) throw bad(where, 'is not a descriptor object');
  if (typeof v.mediaType !== 'string' || !types.includes(v.mediaType)) throw bad(where, `has media type ${JSON.stringify(v.mediaType)}, expected one of ${types.join(', ')}`);
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest)) throw bad(where, `the digest ${JSON.stringify(v.digest)?.slice(0, 100)} is not sha256:<64 hex digits>`);
  const digest = v.digest;
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size <= 0 || v.size > maxSize) throw bad(where, `declares size ${JSON.stringify(v.size)}; it must be a whole number of bytes from 1 to ${maxSize}`);
  const d: Descriptor = { mediaType: v.mediaType, digest, size: v.size };
  // annotations are only shown (a layer's title in progress lines): strings, kept short
  if (isObject(v.annotations)) d.annotations = Object.fromEntries(Object.entries(v.annotations).filter(([, s]) => typeof s === 'string').map(([k, s]) => [k.slice(0, 128), (s as string).slice(0, 256)]));
  return d;
}

/** What an image manifest may hold: unik's own artifacts by default; container images (src/hub/image-source.ts) allow more. */
export interface ManifestLimits {
  layers: number;
  layerTypes: string[];
  imageBytes: number;
  /** the refusal to throw (unik artifacts: badImage) */
  bad?: (where: string, problem: string) => Error;
}

/** An image manifest; `headerType` is the Content-Type the registry sent. Foreign `urls` are never used. */
export function checkOciManifest(body: Buffer, headerType: string, where: string, limits: ManifestLimits = { layers: LIMITS.layers, layerTypes: LAYER_TYPES, imageBytes: LIMITS.imageBytes }): OciManifest {
  const bad = limits.bad ?? badImage;
  const m = parseJson(body, where);
  if (m.schemaVersion !== 2) throw bad(where, `has schemaVersion ${JSON.stringify(m.schemaVersion)}, expected 2`);
  const mediaType = m.mediaType ?? headerType;
  if (typeof mediaType !== 'string' || !MANIFEST_TYPES.includes(mediaType)) throw bad(where, `is a ${JSON.stringify(mediaType)}, not an OCI image manifest`);
  if (!Array.isArray(m.layers) || m.layers.length === 0 || m.layers.length > limits.layers) throw bad(where, `must list 1 to ${limits.layers} layers`);
  const config = checkDescriptor(m.config, `${where}, config`, CONFIG_TYPES, LIMITS.configBytes, bad);
  const layers = m.layers.map((l, n) => checkDescriptor(l, `${where}, layer ${n}`, limits.layerTypes, limits.imageBytes, bad));
  const total = layers.reduce((s, l) => s + l.size, 0);
  if (total > limits.imageBytes) throw bad(where, `its layers add up to ${total} bytes; at most ${limits.imageBytes} are taken`);
  return { schemaVersion: 2, mediaType, config, layers };
}

export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.includes(mediaType);
}

/** One entry of an index, checked, with the platform it is for ("?" where it says none). */
interface IndexEntry {
  descriptor: Descriptor;
  os: string;
  architecture: string;
  variant?: string;
}

/** An index's entries, each checked (one level: an index of indexes is not followed). */
function indexEntries(body: Buffer, where: string): IndexEntry[] {
  const ix = parseJson(body, where);
  if (ix.schemaVersion !== 2) throw badImage(where, `has schemaVersion ${JSON.stringify(ix.schemaVersion)}, expected 2`);
  if (!Array.isArray(ix.manifests) || ix.manifests.length === 0 || ix.manifests.length > LIMITS.indexEntries) throw badImage(where, `must list 1 to ${LIMITS.indexEntries} manifests`);
  return ix.manifests.map((raw, n): IndexEntry => {
    const p = isObject(raw) && isObject(raw.platform) ? raw.platform : {};
    const os = typeof p.os === 'string' && PLATFORM_WORD.test(p.os) ? p.os : '?';
    const architecture = typeof p.architecture === 'string' && PLATFORM_WORD.test(p.architecture) ? p.architecture : '?';
    const variant = typeof p.variant === 'string' && /^[a-z0-9]{1,16}$/.test(p.variant) ? p.variant : undefined;
    return { descriptor: checkDescriptor(raw, `${where}, manifest ${n}`, MANIFEST_TYPES, LIMITS.manifestBytes), os, architecture, ...(variant ? { variant } : {}) };
  });
}

/** The index's linux/`arch` entry, or undefined (with what it does hold). */
export function pickPlatform(body: Buffer, where: string, arch: string): { entry?: Descriptor; platforms: string[] } {
  const entries = indexEntries(body, where);
  const platforms = entries.map((e) => `${e.os}/${e.architecture}`);
  const hit = entries.find((e) => e.os === 'linux' && e.architecture === arch);
  return hit ? { entry: hit.descriptor, platforms } : { platforms };
}

/** A platform string unik writes back or shows: lower-case words, else not used. */
export const PLATFORM_WORD = /^[a-z0-9_-]{1,32}$/;

/** What a tag holds before a push, as far as the push needs it. */
export type TagContent =
  | { kind: 'none' }
  | { kind: 'index'; body: Buffer }
  | { kind: 'image'; descriptor: Descriptor; os: string; architecture: string };

/**
 * The index a push of `ours` (linux/`arch`) writes when the tag already holds other platforms,
 * or undefined when a plain manifest will do (the tag is new, or holds only `arch`). Entries for
 * other platforms are kept as the registry gave them, byte for byte once parsed (other clients
 * may need fields unik does not read); only their digests are checked. An entry for `arch` is
 * replaced.
 */
export function mergedIndex(tag: TagContent, arch: string, ours: Descriptor, where: string): { index: Buffer; platforms: string[] } | undefined {
  let kept: Record<string, unknown>[] = [];
  if (tag.kind === 'image') {
    if (!PLATFORM_WORD.test(tag.os) || !PLATFORM_WORD.test(tag.architecture)) throw badImage(where, `its config names the platform ${JSON.stringify(`${tag.os}/${tag.architecture}`).slice(0, 80)}, which unik cannot write into an index`);
    if (tag.os === 'linux' && tag.architecture === arch) return undefined;
    kept = [{ ...tag.descriptor, platform: { architecture: tag.architecture, os: tag.os } }];
  } else if (tag.kind === 'index') {
    const ix = parseJson(tag.body, where);
    if (ix.schemaVersion !== 2 || !Array.isArray(ix.manifests) || ix.manifests.length > LIMITS.indexEntries) throw badImage(where, `is not an OCI index of at most ${LIMITS.indexEntries} entries`);
    for (const [n, raw] of ix.manifests.entries()) {
      if (!isObject(raw) || typeof raw.mediaType !== 'string' || typeof raw.size !== 'number') throw badImage(where, `entry ${n} is not a descriptor`);
      checkDigest(raw.digest, `${where}, entry ${n}`);
      const p = isObject(raw.platform) ? raw.platform : {};
      if (!(p.os === 'linux' && p.architecture === arch)) kept.push(raw);
    }
  }
  if (!kept.length) return undefined;
  if (kept.length + 1 > LIMITS.indexEntries) throw badImage(where, `already lists ${kept.length} platforms; an index holds at most ${LIMITS.indexEntries}`);
  const manifests = [...kept, { ...ours, platform: { architecture: arch, os: 'linux' } }];
  const platforms = manifests.map((m) => {
    const p = isObject(m.platform) ? m.platform : {};
    const word = (v: unknown) => (typeof v === 'string' && PLATFORM_WORD.test(v) ? v : '?');
    return `${word(p.os)}/${word(p.architecture)}`;
  });
  return { index: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests })), platforms };
}

/** The image config: a JSON object whose os and architecture the caller checks. */
export function checkImageConfig(body: Buffer, where: string): { os: string; architecture: string } {
  const c = parseJson(body, where);
  const os = typeof c.os === 'string' ? c.os.slice(0, 32) : JSON.stringify(c.os ?? null).slice(0, 32);
  const architecture = typeof c.architecture === 'string' ? c.architecture.slice(0, 32) : JSON.stringify(c.architecture ?? null).slice(0, 32);
  if (c.config !== undefined && c.config !== null && !isObject(c.config)) throw badImage(where, '"config" is not an object');
  return { os, architecture };
}
