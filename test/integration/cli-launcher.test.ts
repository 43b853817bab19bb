// bin/unik as a user's shell runs it: sh moves NODE_EXTRA_CA_CERTS aside so that Node starts
// without parsing the bundle, and the CLI trusts those CAs when it connects over TLS. Against an
// https stand-in for the daemon (no VM), trust must be what `node bin/unik` gives.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeCerts, type TestCerts } from './certs.js';
import { ROOT } from './harness.js';

const CLI = join(ROOT, 'bin', 'unik');
let certs: TestCerts;
let server: Server;
let host = '';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, UNIK_HOST: host, UNIK_API_TOKEN: '', UNIK_TLS: '', UNIK_TLS_VERIFY: '', UNIK_CERT_PATH: '', NODE_EXTRA_CA_CERTS: '', ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}
/** the same line through the launcher and straight through node */
const both = (args: string[], env: NodeJS.ProcessEnv) => Promise.all([run(CLI, args, env), run(process.execPath, [CLI, ...args], env)]);

before(async () => {
  certs = makeCerts();
  // every path answers what a daemon with no volume answers to GET /volumes
  server = createServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('[]');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => {
  server.close();
  rmSync(certs.dir, { recursive: true, force: true });
  rmSync(certs.strangerDir, { recursive: true, force: true });
});

test('NODE_EXTRA_CA_CERTS alone makes the daemon trusted, with --tls or an https:// address, through the launcher as through node', async () => {
  for (const [args, env] of [
    [['--tls', 'volumes', '--json'], { NODE_EXTRA_CA_CERTS: certs.ca }],
    [['volumes', '--json'], { NODE_EXTRA_CA_CERTS: certs.ca, UNIK_HOST: `https://${host}` }],
  ] as const) {
    for (const r of await both([...args], env)) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '[]');
    }
  }
});

test('without it, or with a --tlscacert that replaces it (as Node\'s ca does), the certificate is refused by both', async () => {
  for (const env of [{}, { NODE_EXTRA_CA_CERTS: join(certs.strangerDir, 'client-cert.pem') }]) {
    for (const r of await both(['--tls', 'volumes'], env)) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot reach the unik daemon at https:.*(UNABLE_TO_VERIFY_LEAF_SIGNATURE|self.signed|unable to verify)/i);
    }
  }
  for (const r of await both(['--tls', '--tlscacert', join(certs.strangerDir, 'client-cert.pem'), 'volumes'], { NODE_EXTRA_CA_CERTS: certs.ca })) {
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the unik daemon/);
  }
});

test('a --tlscacert works as before, and plain-HTTP commands do not need the CA file at all', async () => {
  for (const r of await both(['--tls', '--tlscacert', certs.ca, 'volumes', '--json'], { NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' })) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '[]');
  }
  const v = await run(CLI, ['--version'], { NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' });
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});
