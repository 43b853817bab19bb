import { invalid } from '../model/errors.js';

export interface Reference {
  /** host[:port] as given; docker.io for bare names */
  registry: string;
  repository: string;
  tag: string;
  digest?: string;
}

/** host[:port]: DNS labels, or an IPv6 address in brackets */
const REGISTRY_HOST = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::\d{1,5})?$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

/** REGISTRY/REPO[:TAG][@sha256:…]; a first part with "." or ":" (or localhost) is the registry. */
export function parseReference(ref: string): Reference {
  const bad = () => invalid('BAD_REFERENCE', `bad image reference ${JSON.stringify(ref)}`, 'use REGISTRY/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/unik/go-http:v1');
  const m = /^(?:([^/]+)\/)?([a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(ref.trim());
  if (!m) throw bad();
  let [, first, rest, tag, digest] = m as unknown as [string, string | undefined, string, string | undefined, string | undefined];
  let registry = 'docker.io';
  let repository = rest;
  if (first !== undefined) {
    // the first part becomes a URL's host or path: it must be one, not any text without a "/"
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!REGISTRY_HOST.test(first)) throw bad();
      registry = first;
    } else {
      if (!PATH_COMPONENT.test(first)) throw bad();
      repository = `${first}/${rest}`;
    }
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
