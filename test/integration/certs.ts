import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate, made
 * with openssl, laid out as Docker's DOCKER_CERT_PATH expects (ca.pem, cert.pem, key.pem: the
 * client's) plus server-cert.pem / server-key.pem, and a second, unrelated CA's client pair.
 */
export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** a client certificate signed by another CA: must be refused */
  strangerDir: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', 'ca-key.pem', '-out', 'ca.pem'], dir);
}

function sign(dir: string, base: string, subject: string, ext: string): void {
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${base}-key.pem`, '-out', `${base}.csr`], dir);
  writeFileSync(join(dir, `${base}.ext`), ext);
  openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', `${base}.ext`, '-out', `${base}-cert.pem`], dir);
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'unik-certs-'));
  makeCa(dir, 'unik test CA');
  sign(dir, 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  sign(dir, 'client', '/CN=unik-test-client', 'extendedKeyUsage=clientAuth\n');
  // Docker's names for the client side
  execFileSync('cp', [join(dir, 'client-cert.pem'), join(dir, 'cert.pem')]);
  execFileSync('cp', [join(dir, 'client-key.pem'), join(dir, 'key.pem')]);

  const strangerDir = mkdtempSync(join(tmpdir(), 'unik-certs-stranger-'));
  makeCa(strangerDir, 'some other CA');
  sign(strangerDir, 'client', '/CN=stranger', 'extendedKeyUsage=clientAuth\n');
  execFileSync('cp', [join(strangerDir, 'client-cert.pem'), join(strangerDir, 'cert.pem')]);
  execFileSync('cp', [join(strangerDir, 'client-key.pem'), join(strangerDir, 'key.pem')]);
  // the stranger trusts the real server CA, so only its client certificate is wrong
  execFileSync('cp', [join(dir, 'ca.pem'), join(strangerDir, 'ca.pem')]);
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server-cert.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'cert.pem'),
    clientKey: join(dir, 'key.pem'),
    strangerDir,
  };
}
