import { invalid } from '../core/errors.js';

export interface Reference {
  /** host[:port] as given; docker.io for bare names */
  registry: string;
  repository: string;
  tag: string;
  digest?: string;
}

/** REGISTRY/REPO[:TAG][@sha256:…]; a first part with "." or ":" (or localhost) is the registry. */
export function parseReference(ref: string): Reference {
  const m = /^(?:([^/]+)\/)?([a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(ref.trim());
  if (!m) throw invalid('BAD_REFERENCE', `bad image reference ${JSON.stringify(ref)}`, 'use REGISTRY/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/unik/go-http:v1');
  let [, first, rest, tag, digest] = m as unknown as [string, string | undefined, string, string | undefined, string | undefined];
  let registry = 'docker.io';
  let repository = rest;
  if (first !== undefined) {
    if (first.includes('.') || first.includes(':') || first === 'localhost') registry = first;
    else repository = `${first}/${rest}`;
  }
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository, tag: tag ?? 'latest', ...(digest ? { digest } : {}) };
}

export function formatReference(r: Reference): string {
  return `${r.registry}/${r.repository}:${r.tag}${r.digest ? `@${r.digest}` : ''}`;
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/;

/** Plain HTTP only to this machine, or to a registry the user named as insecure. */
export function registryBase(registry: string, insecure: boolean): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `${insecure || LOOPBACK.test(registry) ? 'http' : 'https'}://${registry}`;
}
