// The registry client's trust rules, against small local HTTP servers: redirects are followed
// without the Authorization header to another origin, at most 5 hops; blobs are cut off at
// their declared size; manifests at 4 MiB; credentials go only to an allowed token realm.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRealm, trustedRealmsFromEnv } from '../../src/hub/realm.js';
import { RegistryClient } from '../../src/hub/registry.js';
import { Front } from '../integration/oci-craft.js';

const dir = mkdtempSync(join(tmpdir(), 'unik-trust-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const creds = { username: 'alice', password: 's3cret' };
const BASIC = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
const blob = Buffer.from('the blob bytes '.repeat(100));
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

/** A registry that wants Basic auth and redirects blob GETs to `storage`. */
async function servers() {
  const storage = new Front();
  const registry = new Front();
  storage.handle = (req, res) => {
    res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    return !!req;
  };
  registry.handle = (req, res) => {
    if (req.headers.authorization !== BASIC) res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    else if (req.url?.startsWith('/v2/r/blobs/')) res.writeHead(307, { location: `http://${storage.host}/data/${digest}?sig=1` }).end();
    else res.writeHead(404).end();
    return true;
  };
  await Promise.all([storage.start(), registry.start()]);
  return { storage, registry, stop: () => Promise.all([storage.stop(), registry.stop()]) };
}

test('a blob redirect to another port is followed without the Authorization header', async () => {
  const s = await servers();
  try {
    const c = new RegistryClient(s.registry.host, creds, false);
    await c.downloadBlob('r', digest, join(dir, 'b1'), blob.length);
    assert.deepEqual(readFileSync(join(dir, 'b1')), blob);
    assert.ok(s.registry.seen.some((r) => r.authorization === BASIC), 'the registry got the login');
    assert.equal(s.storage.seen.length, 1);
    assert.equal(s.storage.seen[0]!.authorization, undefined, 'the storage host did not');
  } finally {
    await s.stop();
  }
});

test('redirect loops stop after 5 hops; https -> http and odd schemes are refused', async () => {
  const loop = new Front();
  loop.handle = (req, res) => {
    res.writeHead(302, { location: `/v2/r/blobs/${digest}?n=${loop.seen.length}` }).end();
    return !!req;
  };
  await loop.start();
  try {
    const c = new RegistryClient(loop.host, undefined, false);
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b2'), blob.length), /more than 5 redirects/);
    assert.equal(loop.seen.length, 6, 'the first request and 5 hops');
    loop.handle = (req, res) => {
      res.writeHead(307, { location: 'file:///etc/passwd' }).end();
      return !!req;
    };
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b3'), blob.length), /REGISTRY_REDIRECT|to a file: URL/);
  } finally {
    await loop.stop();
  }
});

test('a blob longer than its descriptor is cut off; a shorter one and a wrong digest are refused', async () => {
  const s = await servers();
  try {
    const c = new RegistryClient(s.registry.host, creds, false);
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b4'), blob.length - 1), (e: Error & { code?: string }) => e.code === 'UNIK_ERR_BLOB_TOO_LARGE');
    // no Content-Length: cut off while streaming
    s.storage.handle = (req, res) => {
      res.writeHead(200);
      res.write(blob);
      res.end(Buffer.alloc(1 << 20));
      return !!req;
    };
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b5'), blob.length), /more than the 1500 its manifest declares/);
    s.storage.handle = (req, res) => {
      res.writeHead(200).end(blob.subarray(1));
      return !!req;
    };
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b6'), blob.length), /is 1499 bytes; its manifest declares 1500/);
    s.storage.handle = (req, res) => {
      res.writeHead(200).end(Buffer.from(blob).fill(7, 0, 1));
      return !!req;
    };
    await assert.rejects(c.downloadBlob('r', digest, join(dir, 'b7'), blob.length), /DIGEST_MISMATCH|arrived with digest/);
    await assert.rejects(c.downloadBlob('r', 'sha256:../../x', join(dir, 'b8'), blob.length), /not sha256/);
    assert.ok(!existsSync(join(dir, 'b8')));
  } finally {
    await s.stop();
  }
});

test('a manifest over 4 MiB is refused while reading, with or without Content-Length', async () => {
  const reg = new Front();
  let chunked = false;
  reg.handle = (req, res) => {
    const big = Buffer.alloc((4 << 20) + 10, 0x20);
    if (chunked) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.write(big.subarray(0, 1 << 20));
      res.end(big.subarray(1 << 20));
    } else res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(big.length) }).end(big);
    return !!req;
  };
  await reg.start();
  try {
    const c = new RegistryClient(reg.host, undefined, false);
    await assert.rejects(c.getManifest('r', 'v1'), (e: Error & { code?: string }) => e.code === 'UNIK_ERR_MANIFEST_TOO_LARGE');
    chunked = true;
    await assert.rejects(c.getManifest('r', 'v1'), /over 4194304 bytes/);
  } finally {
    await reg.stop();
  }
});

test('token realms: credentials only to the registry\'s own host or a trusted HTTPS host; plain HTTP only on loopback', () => {
  const own = checkRealm('https://reg.example.com:5001/token', 'https://reg.example.com', [], 'r');
  assert.equal(own.sendCredentials, true, 'same hostname, another port');
  assert.equal(checkRealm('https://auth.example.com/token', 'https://reg.example.com', [], 'r').sendCredentials, false);
  assert.equal(checkRealm('https://auth.example.com/token', 'https://reg.example.com', ['auth.example.com'], 'r').sendCredentials, true);
  assert.equal(checkRealm('https://auth.example.com:8443/token', 'https://reg.example.com', ['auth.example.com:443'], 'r').sendCredentials, false, 'a port in the list must match');
  assert.equal(checkRealm('http://127.0.0.1:9000/token', 'http://127.0.0.1:5000', [], 'r').sendCredentials, true);
  assert.equal(checkRealm('http://127.0.0.2:9000/token', 'http://127.0.0.1:5000', [], 'r').sendCredentials, false, 'another loopback host');
  assert.throws(() => checkRealm('http://auth.example.com/token', 'https://reg.example.com', ['auth.example.com'], 'r'), /plain HTTP on another machine/);
  assert.throws(() => checkRealm('http://reg.example.com/token', 'https://reg.example.com', [], 'r'), /plain HTTP/, 'no downgrade for an HTTPS registry');
  assert.equal(checkRealm('http://reg.example.com/token', 'http://reg.example.com', [], 'r').sendCredentials, true, 'an --insecure registry\'s own host');
  assert.throws(() => checkRealm('http://127.0.0.1/token', 'https://reg.example.com', [], 'r'), /plain HTTP/, 'a remote registry cannot aim the daemon at its own loopback');
  assert.throws(() => checkRealm('file:///etc/passwd', 'https://reg.example.com', [], 'r'), /uses file:/);
  assert.throws(() => checkRealm('https://u:p@reg.example.com/token', 'https://reg.example.com', [], 'r'), /credentials of its own/);
  assert.throws(() => checkRealm('not a url', 'https://reg.example.com', [], 'r'), /not a URL/);
  assert.deepEqual(trustedRealmsFromEnv(' Auth.Example.com , ,b:443'), ['auth.example.com', 'b:443']);
});

test('a realm on another host gets no credentials: refused with a clear error when logged in, asked anonymously when not', async () => {
  const realm = new Front(undefined, '127.0.0.2');
  realm.handle = (req, res) => {
    res.writeHead(401).end('{}');
    return !!req;
  };
  await realm.start();
  const reg = new Front();
  reg.handle = (req, res) => {
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="s"` }).end();
    return !!req;
  };
  await reg.start();
  try {
    await assert.rejects(new RegistryClient(reg.host, creds, false).ping(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'UNIK_ERR_UNTRUSTED_TOKEN_REALM');
      assert.match(e.message, /unik did not send them/);
      return true;
    });
    assert.equal(realm.seen.length, 0, 'the realm was not even contacted');
    await assert.rejects(new RegistryClient(reg.host, undefined, false).ping(), /refused an anonymous request/);
    assert.equal(realm.seen.length, 1);
    assert.equal(realm.seen[0]!.authorization, undefined);
    assert.ok(reg.seen.every((r) => r.authorization === undefined));
  } finally {
    await Promise.all([realm.stop(), reg.stop()]);
  }
});
