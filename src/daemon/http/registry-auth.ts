import type { FastifyRequest } from 'fastify';
import type { Credentials } from '../../hub/registry.js';

/**
 * Registry credentials sent with a request: Docker's X-Registry-Auth header (base64 or base64url
 * of {"username","password"}), or the 2016 hub config body ({"url","user","pass"}, which old
 * clients also sent as {"URL","Username","Password"}).
 */
export function registryAuth(req: FastifyRequest): Credentials | undefined {
  const header = req.headers['x-registry-auth'];
  if (typeof header === 'string' && header) {
    try {
      const j = JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as { username?: string; password?: string };
      if (j.username) return { username: j.username, password: j.password ?? '' };
    } catch {
      /* not JSON: no credentials */
    }
  }
  const b = (req.body ?? {}) as Record<string, unknown>;
  const user = b.user ?? b.Username ?? b.username;
  const pass = b.pass ?? b.Password ?? b.password;
  if (typeof user === 'string' && user) return { username: user, password: typeof pass === 'string' ? pass : '' };
  return undefined;
}
