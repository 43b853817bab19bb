import { failedPrecondition } from '../model/errors.js';

// Where the Bearer token flow may send the user's credentials. The registry names the token
// server (the "realm") itself, so a hostile or compromised registry could name any host: the
// credentials go only to the registry's own host, or to an HTTPS host the user trusts.

const LOOPBACK = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])$/;

export function isLoopback(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

/** UNIK_TRUSTED_TOKEN_REALMS: comma-separated host or host:port names. */
export function trustedRealmsFromEnv(value = process.env.UNIK_TRUSTED_TOKEN_REALMS): string[] {
  return (value ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

export interface RealmDecision {
  url: URL;
  /** false: ask the realm anonymously, or not at all if the user has credentials */
  sendCredentials: boolean;
}

/**
 * Checks a realm named by the registry at `registryBase`. A realm over plain HTTP is refused
 * unless both are on this machine, or it is the registry's own host and the registry itself is
 * spoken to over HTTP (--insecure): then it sees nothing the registry does not.
 */
export function checkRealm(realm: string, registryBase: string, trusted: string[], registry: string): RealmDecision {
  const refuse = (why: string) =>
    failedPrecondition('UNTRUSTED_TOKEN_REALM', `the registry ${registry} sends logins to the token server ${JSON.stringify(realm.slice(0, 200))}, which ${why}; unik did not contact it`, 'use a registry whose token server is on its own host over HTTPS, or name a token server you trust in UNIK_TRUSTED_TOKEN_REALMS (HTTPS hosts, comma-separated) in the daemon\'s environment');
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw refuse('is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse(`uses ${url.protocol}`);
  if (url.username || url.password) throw refuse('carries credentials of its own');
  const reg = new URL(registryBase);
  const sameHost = url.hostname === reg.hostname;
  if (url.protocol === 'http:' && !(isLoopback(url.hostname) && isLoopback(reg.hostname)) && !(sameHost && reg.protocol === 'http:'))
    throw refuse('is plain HTTP on another machine');
  const isTrusted = url.protocol === 'https:' && trusted.some((t) => t === url.hostname || t === url.host);
  return { url, sendCredentials: sameHost || isTrusted };
}

/** The refusal when the user has credentials and the realm may not have them. */
export function untrustedRealm(realm: URL, registry: string): Error {
  return failedPrecondition(
    'UNTRUSTED_TOKEN_REALM',
    `the registry ${registry} asks for your credentials to be sent to the token server ${realm.host}, another host; unik did not send them`,
    `if you trust ${realm.hostname}, add it to UNIK_TRUSTED_TOKEN_REALMS (comma-separated HTTPS hosts) in the daemon's environment; or pull anonymously (unik hub logout ${registry})`,
  );
}
