// Hostile registries and hostile images cannot touch the host. A real image (examples/c-http)
// is built and pushed once; the test then takes its blobs and pushes crafted variants to
// Debian's docker-registry with plain API calls (or serves them from a lying front server
// where the registry itself would refuse them). Every pull must be refused with a clear 4xx
// error, record no image, leave $UNIK_HOME/tmp empty, write nothing outside (canary folder),
// and never copy a secret file's bytes anywhere. Then redirects and token realms: a storage
// host on another port and a token server on another host never see the credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Daemon, ROOT } from './harness.js';
import { Registry } from './registry.js';
import { Front, OciClient, gz, gzipBomb, sha256, tarOf, type Descriptor, type TarEntry } from './oci-craft.js';

const d = new Daemon();
const open = new Registry();
const locked = new Registry({ alice: 's3cret' });
const hub = () => new OciClient(open.host);
const REPO = 'unik/app';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const scratch = mkdtempSync(join(tmpdir(), 'unik-hostile-'));
const canary = mkdtempSync(join(tmpdir(), 'unik-canary-'));
const SECRET = `UNIK-SECRET-${randomBytes(24).toString('hex')}`;
const secretFile = join(scratch, 'secret.txt');

/** The real image's parts, as pushed by unik. */
let base: { manifest: any; config: Buffer; kernel: Buffer; root: Buffer; unik: any; urunc: Buffer };

before(async () => {
  writeFileSync(secretFile, SECRET);
  await Promise.all([d.start(), open.start(), locked.start()]);
  const build = await d.cli(['push', 'c-http', join(ROOT, 'examples/c-http')]);
  assert.equal(build.code, 0, build.stderr);
  const push = await d.cli(['hub', 'push', 'c-http', `${open.host}/${REPO}:v1`]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const { json } = await hub().getManifest(REPO, 'v1');
  const blobs = await Promise.all([json.config, ...json.layers].map((l: Descriptor) => hub().getBlob(REPO, l.digest)));
  const img = (await d.api('GET', '/images')).json.find((i: { Name: string }) => i.Name === 'c-http');
  const unik = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
  base = { manifest: json, config: blobs[0]!, kernel: blobs[1]!, root: blobs[2]!, unik, urunc: Buffer.from('{}\n') };
  assert.ok(!gunzipSync(base.kernel).includes(SECRET));
});

after(async () => {
  if (process.exitCode) console.error(d.log());
  await Promise.all([d.destroy(), open.destroy(), locked.destroy()]);
  rmSync(scratch, { recursive: true, force: true });
  rmSync(canary, { recursive: true, force: true });
});

const metaLayer = (unik: unknown, extra: TarEntry[] = []) => gz(tarOf([{ name: 'unik/manifest.json', data: Buffer.from(JSON.stringify(unik)) }, { name: 'urunc.json', data: base.urunc }, ...extra]));

/** Pushes an image made of these blobs under `tag`; `edit` may change the manifest before it goes. */
async function craft(tag: string, parts: { layers?: Buffer[]; config?: Buffer; unik?: unknown; edit?: (m: any) => void } = {}): Promise<any> {
  const layers = parts.layers ?? [base.kernel, base.root, metaLayer(parts.unik ?? base.unik)];
  const descs = [];
  for (const l of layers) descs.push(await hub().putBlob(REPO, l, LAYER));
  const config = await hub().putBlob(REPO, parts.config ?? base.config, CONFIG);
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: descs };
  parts.edit?.(manifest);
  const put = await hub().putManifest(REPO, tag, manifest);
  assert.equal(put.status, 201, `the registry took the crafted manifest ${tag}: ${put.text}`);
  return manifest;
}

const imageNames = async () => ((await d.api('GET', '/images')).json as { Name: string }[]).map((i) => i.Name).sort();

/** Every file under a folder (links not followed); folders that vanish meanwhile are skipped. */
function files(dir: string): string[] {
  let list;
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return list.flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

function readIfThere(f: string): Buffer {
  try {
    return readFileSync(f);
  } catch {
    return Buffer.alloc(0);
  }
}

/** The proof that a refused pull left nothing behind. */
async function assertNothingLeft(before: string[], responseText: string): Promise<void> {
  assert.deepEqual(await imageNames(), before, 'no image recorded');
  assert.deepEqual(existsSync(join(d.home, 'tmp')) ? readdirSync(join(d.home, 'tmp')) : [], [], '$UNIK_HOME/tmp is empty');
  assert.deepEqual(readdirSync(join(d.home, 'images')).filter((f) => f.startsWith('.tmp')), [], 'no staged image folder');
  assert.deepEqual(readdirSync(canary), [], 'nothing written outside the pull folder');
  const buf = Buffer.from(SECRET);
  for (const f of files(d.home)) {
    // boot snapshots of the pulled control image come and go meanwhile: skip what vanished
    const st = lstatSync(f, { throwIfNoEntry: false });
    if (!st) continue;
    assert.ok(!st.isSymbolicLink() || !f.startsWith(join(d.home, 'images')), `no link in the image store: ${f}`);
    if (st.isFile()) assert.ok(!readIfThere(f).includes(buf), `the secret's bytes are not in ${f}`);
  }
  assert.ok(!responseText.includes(SECRET), 'nor in the answer');
}

/** Pulls `ref` through the unik API; it must be refused with `status` and `code`. */
async function refused(ref: string, status: number, code: string, message: RegExp, headers: Record<string, string> = {}): Promise<{ json: any }> {
  const before = await imageNames();
  const res = await fetch(`${d.url}/images/pull/hostile?ref=${encodeURIComponent(ref)}`, { method: 'POST', headers });
  const text = await res.text();
  const json = JSON.parse(text);
  assert.equal(res.status, status, text);
  assert.equal(json.code, code, text);
  assert.match(json.message, message);
  assert.ok(json.hint === undefined || typeof json.hint === 'string');
  await assertNothingLeft(before, text);
  return { json };
}

test('control: an image crafted from the same blobs, unchanged, pulls (so each refusal below is the hostile part\'s doing)', async () => {
  await craft('control');
  const r = await d.api('POST', `/images/pull/control?ref=${open.host}/${REPO}:control`);
  assert.equal(r.status, 202, r.text);
  const img = (await d.api('GET', '/images')).json.find((i: { Name: string }) => i.Name === 'control');
  const dir = join(d.home, 'images', img.Id);
  assert.deepEqual(readdirSync(dir).filter((f) => !['snapshots', 'oci'].includes(f)).sort(), ['kernel', 'manifest.json', 'root.cpio']);
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  assert.equal(m.id, img.Id);
  assert.equal(m.name, 'control');
  assert.equal(m.source, `${open.host}/${REPO}:control`);
});

test('manifest.json names its kernel "../../../<canary>/x" and its root an absolute path: refused, nothing renamed out', async () => {
  // what the old pull did: rename(kernel, join(images/.tmp-<id>, kernel.file)) — this lands in the canary folder
  const escape = relative(join(d.home, 'images', '.tmp-x'), join(canary, 'x'));
  assert.match(escape, /^\.\.\/\.\.\/\.\./);
  await craft('kernelfile', { unik: { ...base.unik, kernel: { ...base.unik.kernel, file: escape }, root: { ...base.unik.root, file: join(canary, 'y') } } });
  await refused(`${open.host}/${REPO}:kernelfile`, 409, 'UNIK_ERR_BAD_IMAGE_MANIFEST', /kernel\.file must be a plain file name/);
  await craft('rootfile', { unik: { ...base.unik, root: { ...base.unik.root, file: join(canary, 'y') } } });
  await refused(`${open.host}/${REPO}:rootfile`, 409, 'UNIK_ERR_BAD_IMAGE_MANIFEST', /root\.file must be a plain file name/);
});

test('a layer whose unik/kernel is a symlink to a secret file: refused, the secret is read by nothing', async () => {
  await craft('symlink', { layers: [gz(tarOf([{ name: 'unik/', type: '5' }, { name: 'unik/kernel', type: '2', linkname: secretFile }])), base.root, metaLayer(base.unik)] });
  await refused(`${open.host}/${REPO}:symlink`, 409, 'UNIK_ERR_BAD_IMAGE', /unik\/kernel" of type SymbolicLink/);
});

test('a layer whose unik/kernel is a hard link to a secret file: refused', async () => {
  await craft('hardlink', { layers: [gz(tarOf([{ name: 'unik/kernel', type: '1', linkname: secretFile }])), base.root, metaLayer(base.unik)] });
  await refused(`${open.host}/${REPO}:hardlink`, 409, 'UNIK_ERR_BAD_IMAGE', /type Link/);
});

test('a layer with ../ names aimed at the canary folder, and one with an absolute name: refused', async () => {
  const up = '../'.repeat(12) + canary.slice(1);
  await craft('dotdot', { layers: [base.kernel, base.root, metaLayer(base.unik, [{ name: `${up}/z`, data: Buffer.from('escaped') }])] });
  await refused(`${open.host}/${REPO}:dotdot`, 409, 'UNIK_ERR_BAD_IMAGE', /not a plain path inside the image/);
  await craft('absolute', { layers: [base.kernel, base.root, metaLayer(base.unik, [{ name: `${canary}/z`, data: Buffer.from('escaped') }])] });
  await refused(`${open.host}/${REPO}:absolute`, 409, 'UNIK_ERR_BAD_IMAGE', /absolute name/);
});

test('a gzip bomb (small on the wire, 768 MiB unpacked) is cut off', async () => {
  const bomb = await gzipBomb('unik/kernel', 768 << 20);
  assert.ok(bomb.length < 2 << 20, `${bomb.length} bytes on the wire`);
  await craft('bomb', { layers: [bomb, base.root, metaLayer(base.unik)] });
  const started = Date.now();
  await refused(`${open.host}/${REPO}:bomb`, 409, 'UNIK_ERR_BAD_IMAGE', /decompression bomb/);
  assert.ok(Date.now() - started < 60_000);
});

test('a blob larger than its descriptor says is cut off; a descriptor size that is not a positive integer is refused', async () => {
  // the registry keeps whatever size the manifest declares; the blob it serves is the real one
  await craft('bigblob', { edit: (m) => (m.layers[1].size -= 100) });
  await refused(`${open.host}/${REPO}:bigblob`, 409, 'UNIK_ERR_BLOB_TOO_LARGE', /more than the \d+ its manifest declares/);
  await craft('negsize', { edit: (m) => (m.layers[1].size = -5) });
  await refused(`${open.host}/${REPO}:negsize`, 409, 'UNIK_ERR_BAD_IMAGE', /declares size -5/);
});

test('a registry that serves wrong bytes for a digest, or a manifest with a malformed digest: refused, the digest is never used in a URL', async () => {
  const front = new Front(open.host);
  await front.start();
  try {
    const m = await craft('wrongdigest');
    const rootDigest = m.layers[1].digest;
    front.handle = (req, res) => {
      if (req.url !== `/v2/${REPO}/blobs/${rootDigest}`) return false;
      const bytes = Buffer.from(base.root);
      bytes[bytes.length >> 1]! ^= 0xff;
      res.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes);
      return true;
    };
    await refused(`${front.host}/${REPO}:wrongdigest`, 409, 'UNIK_ERR_DIGEST_MISMATCH', /arrived with digest sha256:[0-9a-f]{64}: the registry holds corrupt data/);

    // distribution refuses such a manifest, so the front serves it
    const evil = structuredClone(m);
    evil.layers[0].digest = `sha256:../../../../${canary.slice(1)}/x`;
    const body = Buffer.from(JSON.stringify(evil));
    front.handle = (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(body.length) }).end(body);
      return true;
    };
    front.seen.length = 0;
    await refused(`${front.host}/${REPO}:baddigest`, 409, 'UNIK_ERR_BAD_IMAGE', /is not sha256:<64 hex digits>/);
    assert.ok(front.seen.every((r) => !r.url.includes('..')), 'no request carried the malformed digest');
    assert.ok(!front.seen.some((r) => r.url.includes('/blobs/')), 'no blob was fetched');
  } finally {
    await front.stop();
  }
});

test('a config for windows, or for arm64, is refused', async () => {
  const cfg = (o: object) => Buffer.from(JSON.stringify({ ...JSON.parse(base.config.toString()), ...o }));
  await craft('windows', { config: cfg({ os: 'windows' }) });
  await refused(`${open.host}/${REPO}:windows`, 409, 'UNIK_ERR_WRONG_ARCH', /built for windows\/amd64, not linux\/amd64/);
  await craft('arm64', { config: cfg({ architecture: 'arm64' }) });
  await refused(`${open.host}/${REPO}:arm64`, 409, 'UNIK_ERR_WRONG_ARCH', /built for linux\/arm64/);
  await craft('notjson', { config: Buffer.from('[1,2,3]') });
  await refused(`${open.host}/${REPO}:notjson`, 409, 'UNIK_ERR_BAD_IMAGE', /image config .* not a JSON object/);
});

test('a manifest over 4 MiB is refused while it is read', async () => {
  const m = await craft('small');
  const big = Buffer.from(JSON.stringify({ ...m, annotations: { pad: 'x'.repeat(5 << 20) } }));
  const put = await hub().putManifest(REPO, 'huge', big);
  let ref = `${open.host}/${REPO}:huge`;
  const front = new Front(open.host);
  if (put.status !== 201) {
    // distribution itself refuses manifests over 4 MiB: a hostile registry serves one anyway
    await front.start();
    front.handle = (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.end(big);
      return true;
    };
    ref = `${front.host}/${REPO}:huge`;
  }
  try {
    await refused(ref, 409, 'UNIK_ERR_MANIFEST_TOO_LARGE', /over 4194304 bytes, the OCI limit/);
  } finally {
    if (front.port) await front.stop();
  }
});

test('manifest.json with a NUL in env, argv that are not strings, a mount point with ..: refused', async () => {
  const cases: [string, object, RegExp][] = [
    ['envnul', { env: { ...base.unik.env, KEY: 'a\0b' } }, /env\.KEY contains a NUL byte/],
    ['argvtypes', { argv: ['/server', 8080, { x: 1 }] }, /argv\[1\] must be a string/],
    ['mountdotdot', { mountPoints: ['/data/../../etc'] }, /mountPoints\[0\] must be a canonical absolute path/],
    ['memory', { defaultMemoryMb: -1 }, /defaultMemoryMb must be a whole number/],
  ];
  for (const [tag, change, message] of cases) {
    await craft(tag, { unik: { ...base.unik, ...change } });
    await refused(`${open.host}/${REPO}:${tag}`, 409, 'UNIK_ERR_BAD_IMAGE_MANIFEST', message);
  }
});

test('docker pull of a hostile image: the error is in-band, nothing recorded', async () => {
  const before = await imageNames();
  const res = await fetch(`${d.url}/v1.41/images/create?fromImage=${encodeURIComponent(`${open.host}/${REPO}`)}&tag=symlink`, { method: 'POST' });
  const text = await res.text();
  const last = JSON.parse(text.trim().split('\n').at(-1)!);
  // without unik's markers the Docker API takes it for an ordinary container image and imports it
  // (From a container image), where symlinks are allowed: its crafted layer does not match the
  // config's diff_ids, and that refuses it (`unik hub pull` of the same tag is refused for the symlink above)
  assert.match(last.error, /unpacks to a tar of digest sha256:[0-9a-f]{64}, but the image config says/);
  await assertNothingLeft(before, text);
});

const basicAuth = (user: string, pass: string) => ({ 'x-registry-auth': Buffer.from(JSON.stringify({ username: user, password: pass })).toString('base64') });

test('blob and manifest redirects to another port are followed, and the credentials stay with the registry', async () => {
  const lockedHub = new OciClient(locked.host, { user: 'alice', pass: 's3cret' });
  // the real image in the locked registry, pushed by unik with a login
  assert.equal((await d.cli(['hub', 'login', locked.host, '-u', 'alice', '-p', 's3cret'])).code, 0);
  const push = await d.cli(['hub', 'push', 'c-http', `${locked.host}/${REPO}:v1`]);
  assert.equal(push.code, 0, push.stderr);
  const manifest = await lockedHub.getManifest(REPO, 'v1');

  // a storage host on another port: serves blobs straight from the registry's disk, and the manifest
  const storage = new Front();
  storage.handle = (req, res) => {
    const m = /^\/(blobs|manifests)\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '');
    if (!m) return false;
    const bytes = m[1] === 'blobs' ? readFileSync(locked.blobFile(m[2]!)) : manifest.body;
    res.writeHead(200, { 'content-type': m[1] === 'blobs' ? 'application/octet-stream' : OCI_MANIFEST, 'content-length': String(bytes.length) }).end(bytes);
    return true;
  };
  // the registry's own front: proxies everything, but sends blob and manifest GETs to storage
  const front = new Front(locked.host);
  front.handle = (req, res) => {
    const m = /^\/v2\/unik\/app\/(blobs|manifests)\/([^/?]+)/.exec(req.url ?? '');
    if (!m || req.method !== 'GET' || !req.headers.authorization) return false; // the 401 comes from the registry
    const target = m[1] === 'blobs' ? m[2] : sha256(manifest.body);
    res.writeHead(307, { location: `http://${storage.host}/${m[1]}/${target}?signature=abc` }).end();
    return true;
  };
  await Promise.all([storage.start(), front.start()]);
  try {
    const r = await fetch(`${d.url}/images/pull/redirected?ref=${front.host}/${REPO}:v1`, { method: 'POST', headers: basicAuth('alice', 's3cret') });
    assert.equal(r.status, 202, await r.text());
    const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    assert.ok(front.seen.some((s) => s.authorization === basic), 'the registry got the login');
    assert.ok(storage.seen.some((s) => s.url.startsWith('/manifests/')), 'the manifest came from storage');
    assert.equal(storage.seen.filter((s) => s.url.startsWith('/blobs/')).length, 4, 'the config and 3 layers came from storage');
    for (const s of storage.seen) {
      assert.equal(s.authorization, undefined, `storage saw no Authorization on ${s.url}`);
      assert.ok(!JSON.stringify(s.headers).includes('s3cret') && !JSON.stringify(s.headers).includes(basic.slice(6)), 'nor the password anywhere in its headers');
    }
    assert.ok((await imageNames()).includes('redirected'));

    // a registry that redirects for ever is cut off after 5 hops
    front.handle = (req, res) => {
      if (!req.url?.includes('/blobs/') || !req.headers.authorization) return false;
      res.writeHead(302, { location: `${req.url.split('?')[0]}?hop=${front.seen.length}` }).end();
      return true;
    };
    await refused(`${front.host}/${REPO}:v1`, 409, 'UNIK_ERR_REGISTRY_REDIRECT', /more than 5 redirects/, basicAuth('alice', 's3cret'));
  } finally {
    await Promise.all([storage.stop(), front.stop()]);
  }
});

test('a token realm on another host never receives the Basic credentials', async () => {
  const realm = new Front(undefined, '127.0.0.2');
  realm.handle = (req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"no"}');
    return !!req;
  };
  const front = new Front(open.host);
  front.handle = (req, res) => {
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="hostile",scope="repository:${REPO}:pull"` }).end();
    return true;
  };
  await Promise.all([realm.start(), front.start()]);
  try {
    const { json } = await refused(`${front.host}/${REPO}:v1`, 409, 'UNIK_ERR_UNTRUSTED_TOKEN_REALM', /asks for your credentials to be sent to the token server 127\.0\.0\.2:\d+, another host; unik did not send them/, basicAuth('alice', 's3cret'));
    assert.match(json.hint, /UNIK_TRUSTED_TOKEN_REALMS/);
    assert.equal(realm.seen.length, 0, 'the realm was not contacted at all');
    const login = await d.cli(['hub', 'login', front.host, '-u', 'alice', '-p', 's3cret']);
    assert.notEqual(login.code, 0);
    assert.match(login.stderr, /unik did not send them/);
    assert.equal(realm.seen.length, 0);

    // anonymous: asking the realm leaks nothing, and it is asked without an Authorization header
    await refused(`${front.host}/${REPO}:v1`, 401, 'UNIK_ERR_REGISTRY_DENIED', /refused an anonymous request/);
    assert.equal(realm.seen.length, 1);
    assert.equal(realm.seen[0]!.authorization, undefined);

    // a realm over plain HTTP on another machine is never contacted
    front.handle = (req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://192.0.2.1/token",service="x"' }).end();
      return !!req;
    };
    await refused(`${front.host}/${REPO}:v1`, 409, 'UNIK_ERR_UNTRUSTED_TOKEN_REALM', /plain HTTP on another machine; unik did not contact it/, basicAuth('alice', 's3cret'));
  } finally {
    await Promise.all([realm.stop(), front.stop()]);
  }
});
