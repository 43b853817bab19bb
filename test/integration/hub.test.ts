// The hub is any OCI registry: push from one UNIK_HOME, pull into another, run it there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Daemon, ROOT, freePort, httpUntil } from './harness.js';
import { Registry } from './registry.js';
import { TokenServer } from './token-server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const a = new Daemon();
const b = new Daemon();
const open = new Registry();
const locked = new Registry({ alice: 's3cret' });

before(async () => {
  await Promise.all([a.start(), b.start(), open.start(), locked.start()]);
  const push = await a.cli(['push', 'go-http', join(ROOT, 'examples/go-http')]);
  assert.equal(push.code, 0, push.stderr);
});
after(async () => {
  if (process.exitCode) console.error(a.log(), b.log());
  await Promise.all([a.destroy(), b.destroy(), open.destroy(), locked.destroy()]);
});

const images = async (d: Daemon) => ((await d.api('GET', '/images')).json as { Name: string }[]).map((i) => i.Name).sort();

test('push to an open registry; skopeo sees the documented media types; pull into an empty home and run', async () => {
  const ref = `${open.host}/unik/go-http:v1`;
  const push = await a.cli(['hub', 'push', 'go-http', ref]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  assert.match(push.stdout, new RegExp(`pushed ${ref.replace(/[.]/g, '\\.')}@sha256:[0-9a-f]{64}`));

  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], { encoding: 'utf8' }));
  assert.equal(raw.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(raw.config.mediaType, 'application/vnd.oci.image.config.v1+json');
  assert.deepEqual(raw.layers.map((l: { mediaType: string }) => l.mediaType), Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip'));
  assert.deepEqual(raw.layers.map((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title']), ['unik/kernel', 'unik/root.cpio', 'unik/manifest.json']);
  assert.equal(raw.annotations['com.urunc.unikernel.binary'], '/unik/kernel');
  assert.equal(raw.annotations['sh.unik.image.language'], 'go');

  const again = await a.api('POST', `/images/push/go-http?ref=${open.host}/unik/go-http:v2`);
  assert.equal(again.status, 202, 'the 2016 route');
  assert.equal(again.json.Digest, push.stdout.match(/@(sha256:[0-9a-f]{64})/)![1], 'same image, same manifest digest');

  const pull = await b.cli(['hub', 'pull', ref, '--name', 'fromhub']);
  assert.equal(pull.code, 0, pull.stderr + pull.stdout);
  assert.deepEqual(await images(b), ['fromhub']);
  const port = await freePort();
  assert.equal((await b.cli(['run', 'fromhub', '--name', 'web', '-p', `${port}:8080`, '-e', 'KEY=from-the-hub'])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'from-the-hub');
  assert.equal((await b.cli(['rm', '-f', 'web'])).code, 0);

  const search = await a.cli(['hub', 'search', open.host, 'go-http', '--json']);
  assert.equal(search.code, 0, search.stderr);
  assert.deepEqual(JSON.parse(search.stdout), [{ Name: 'unik/go-http', Tags: ['v1', 'v2'] }]);
});

test('docker pull (POST /images/create) pulls through the hub; docker run takes the registry reference', async () => {
  const ref = `${open.host}/unik/go-http:v2`;
  const docker = (args: string[]) => execFileSync('timeout', ['-s', 'KILL', '60', 'docker', '-H', `tcp://127.0.0.1:${b.port}`, ...args], { encoding: 'utf8' });
  assert.match(docker(['pull', ref]), /Status: Downloaded newer image for /);
  assert.ok((await images(b)).includes('go-http'));
  const port = await freePort();
  const id = docker(['run', '-d', '-p', `${port}:8080`, ref]).trim();
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  docker(['rm', '-f', id]);
  assert.equal((await b.cli(['rmu', 'go-http'])).code, 0);
});

test('a registry with a login: wrong password is a clear 401 and stores nothing; then push and pull with it', async () => {
  const ref = `${locked.host}/unik/private:v1`;
  const bad = await a.cli(['hub', 'login', locked.host, '-u', 'alice', '-p', 'wrong']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /refused the credentials of alice/);
  assert.ok(!existsSync(join(a.home, 'hub-config.json')), 'nothing stored');
  const anon = await a.cli(['hub', 'push', 'go-http', ref]);
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr, /requires a login|refused/);

  const ok = await a.cli(['hub', 'login', locked.host, '-u', 'alice', '-p', 's3cret']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(statSync(join(a.home, 'hub-config.json')).mode & 0o777, 0o600);
  assert.equal((await a.cli(['hub', 'push', 'go-http', ref])).code, 0);

  assert.notEqual((await b.cli(['hub', 'pull', ref, '--name', 'private'])).code, 0, 'b has not logged in');
  assert.equal((await b.cli(['hub', 'login', locked.host, '-u', 'alice', '-p', 's3cret'])).code, 0);
  const pull = await b.cli(['hub', 'pull', ref, '--name', 'private']);
  assert.equal(pull.code, 0, pull.stderr);
  assert.deepEqual(await images(b), ['fromhub', 'private']);
  assert.equal((await b.cli(['hub', 'logout', locked.host])).code, 0);
});

test('unknown repository or tag, a registry that is down: clear errors, nothing stored', async () => {
  let r = await b.api('POST', `/images/pull/x?ref=${open.host}/unik/nope:v1`);
  assert.equal(r.status, 404);
  assert.match(r.json.message, /was not found/);
  r = await b.api('POST', `/images/pull/x?ref=${open.host}/unik/go-http:nosuchtag`);
  assert.equal(r.status, 404);
  const down = await freePort();
  r = await b.api('POST', `/images/pull/x?ref=127.0.0.1:${down}/unik/go-http:v1`);
  assert.equal(r.status, 503);
  assert.match(r.json.message, /cannot reach the registry 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  r = await b.api('POST', '/images/pull/x?ref=busybox');
  assert.equal(r.status, 400, 'Docker Hub holds no unikernels, and is never contacted');
  assert.deepEqual(await images(b), ['fromhub', 'private']);
});

test('a corrupted blob is detected by digest: the pull is refused and no image is left', async () => {
  const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${open.host}/unik/go-http:v1`], { encoding: 'utf8' }));
  const file = open.blobFile(manifest.layers[1].digest);
  const bytes = readFileSync(file);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  writeFileSync(file, bytes);
  const r = await b.api('POST', `/images/pull/corrupt?ref=${open.host}/unik/go-http:v1`);
  assert.equal(r.status, 409);
  assert.match(r.json.message, /arrived with digest sha256:[0-9a-f]+: the registry holds corrupt data/);
  assert.deepEqual(await images(b), ['fromhub', 'private']);
  assert.deepEqual(readdirSync(join(b.home, 'images')).filter((f) => f.startsWith('.tmp')), []);
});

test('an image built for another architecture is refused', async () => {
  // the same layers under a config that says arm64, pushed with the plain registry API
  const src = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${open.host}/unik/go-http:v2`], { encoding: 'utf8' }));
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const start = await fetch(`http://${open.host}/v2/unik/go-http/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location')!, `http://${open.host}`);
  loc.searchParams.set('digest', digest);
  assert.equal((await fetch(loc, { method: 'PUT', body: config, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
  const manifest = { ...src, config: { ...src.config, digest, size: config.length } };
  const put = await fetch(`http://${open.host}/v2/unik/go-http/manifests/arm`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(put.status, 201);
  const r = await b.api('POST', `/images/pull/armed?ref=${open.host}/unik/go-http:arm`);
  assert.equal(r.status, 409);
  assert.match(r.json.message, /built for linux\/arm64, not linux\/amd64/);
  assert.match(r.json.hint, /--arch arm64/);
  assert.deepEqual(await images(b), ['fromhub', 'private']);
});

test('a registry behind the token flow (Bearer): push and pull with a token from a real token server', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-token-'));
  const tokens = new TokenServer(dir, { bob: 'hunter2' });
  await tokens.start();
  const reg = new Registry(undefined, { realm: `http://127.0.0.1:${tokens.port}/token`, issuer: tokens.issuer, cert: tokens.cert });
  await reg.start();
  try {
    const ref = `${reg.host}/unik/tokened:v1`;
    const anon = await a.api('POST', `/images/push/go-http?ref=${ref}`);
    assert.equal(anon.status, 401, 'the token server refuses an anonymous token');
    assert.equal((await a.cli(['hub', 'login', reg.host, '-u', 'bob', '-p', 'hunter2'])).code, 0);
    const push = await a.cli(['hub', 'push', 'go-http', ref]);
    assert.equal(push.code, 0, push.stderr);
    assert.ok(tokens.requests >= 2, 'tokens were fetched');
    assert.equal((await b.cli(['hub', 'login', reg.host, '-u', 'bob', '-p', 'hunter2'])).code, 0);
    const pull = await b.cli(['hub', 'pull', ref, '--name', 'tokened']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.ok((await images(b)).includes('tokened'));
    const wrong = await b.cli(['hub', 'login', reg.host, '-u', 'bob', '-p', 'nope']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /refused the credentials/);
  } finally {
    await reg.destroy();
    tokens.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
