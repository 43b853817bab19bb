import { execFileSync } from 'node:child_process';
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

/**
 * A token server for the registry's token auth (the Bearer flow Docker Hub and GHCR use): it
 * checks Basic credentials and answers {"token"} — a JWT signed RS256, carrying its certificate
 * in x5c so the registry can verify it against the bundle in its config.
 */
export class TokenServer {
  port = 0;
  private server?: Server;
  readonly cert: string;
  private readonly key: string;
  requests = 0;

  constructor(
    dir: string,
    private readonly users: Record<string, string>,
    readonly issuer = 'unik-test-issuer',
  ) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'token.key'), '-out', join(dir, 'token.crt'), '-subj', '/CN=unik-test-token', '-days', '2'], { stdio: 'ignore' });
    this.cert = join(dir, 'token.crt');
    this.key = readFileSync(join(dir, 'token.key'), 'utf8');
  }

  async start(): Promise<void> {
    const der = new X509Certificate(readFileSync(this.cert)).raw.toString('base64');
    this.server = createServer((req, res) => {
      this.requests++;
      const url = new URL(req.url ?? '/', 'http://x');
      const [user, pass] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':');
      if (!user || this.users[user] !== pass) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const access = (url.searchParams.getAll('scope') ?? []).flatMap((s) => {
        const [type, name, actions] = s.split(':');
        return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const head = b64({ alg: 'RS256', typ: 'JWT', x5c: [der] });
      const body = b64({ iss: this.issuer, sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access });
      const sig = createSign('RSA-SHA256').update(`${head}.${body}`).sign(this.key).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${head}.${body}.${sig}` }));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server!.address() as { port: number }).port;
  }

  stop(): void {
    this.server?.close();
  }
}
