import type { Core } from '../../core/core.js';
import { notFound } from '../../model/errors.js';
import type { ImageRecord } from '../../model/types.js';
import { formatReference, parseReference } from '../../hub/reference.js';

/**
 * Docker image references → unik images: "NAME", "NAME:latest", "docker.io/library/NAME:latest",
 * "sha256:ID" or an id prefix. unik images have one tag, latest.
 */
export function resolveImage(core: Core, ref: string): ImageRecord {
  // a registry reference resolves to the image pulled from it
  try {
    const full = formatReference(parseReference(ref));
    const pulled = core.images.list().find((i) => i.manifest.source === full);
    if (pulled) return pulled;
  } catch {
    /* not a reference: a name or an id */
  }
  const clean = ref.replace(/^(docker\.io\/)?(library\/)?/, '').replace(/^sha256:/, '');
  const [name, tag] = splitTag(clean);
  if ((tag && tag !== 'latest') || name.includes('/')) throw notFound('IMAGE_NOT_FOUND', `no such image: ${ref}`);
  try {
    return core.images.get(name);
  } catch {
    throw notFound('IMAGE_NOT_FOUND', `no such image: ${ref}`);
  }
}

function splitTag(ref: string): [string, string | undefined] {
  const at = ref.lastIndexOf(':');
  if (at <= 0 || ref.slice(at).includes('/')) return [ref, undefined];
  return [ref.slice(0, at), ref.slice(at + 1)];
}

/** Signal names and numbers as `docker kill --signal` sends them. */
const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15 };

export function parseSignal(s: string | undefined): number | undefined {
  if (!s) return 9;
  if (/^\d+$/.test(s)) return Number(s) > 0 && Number(s) < 65 ? Number(s) : undefined;
  return SIGNALS[s.toUpperCase().replace(/^SIG/, '')];
}
