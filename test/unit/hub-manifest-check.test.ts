// The pulled unik manifest.json and the OCI manifest/index/config: strict shapes, and unik's
// own names for everything that names a host thing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPulledManifest, isCanonicalAbsolute } from '../../src/core/manifest-check.js';
import { checkDigest, checkImageConfig, checkOciManifest, LIMITS, pickPlatform, mergedIndex } from '../../src/hub/oci-check.js';

const facts = { arch: 'amd64' as const, id: 'a'.repeat(64), name: 'pulled', source: '127.0.0.1:5000/x:v1', sourceDigest: `sha256:${'b'.repeat(64)}`, kernelBytes: 1000, rootBytes: 2000 };
const good = {
  schemaVersion: 1,
  id: 'theirs',
  name: 'theirs',
  created: '2024-05-01T10:00:00.000Z',
  arch: 'x86_64',
  base: 'linux',
  language: 'c',
  compiler: 'linux-c-qemu',
  provider: 'qemu',
  kernel: { file: 'kernel', configHash: 'd0a939b09d0b8113', fragments: ['base', 'net'], sizeBytes: 1000 },
  root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: 2000 },
  argv: ['/app/server', '--port', '8080'],
  cwd: '/app',
  env: { KEY: 'value', PATH: '/bin' },
  mountPoints: ['/data'],
  defaultMemoryMb: 64,
  ports: [8080],
  source: 'evil',
  sourceDigest: 'evil',
  extra: { anything: true },
};
const check = (m: unknown) => checkPulledManifest(JSON.stringify(m), facts);
const withField = (path: string, value: unknown) => {
  const m = structuredClone(good) as any;
  const keys = path.split('.');
  let o = m;
  for (const k of keys.slice(0, -1)) o = o[k];
  o[keys.at(-1)!] = value;
  return m;
};

test('a good manifest is rebuilt with unik\'s own file names, id, name and source; unknown fields dropped', () => {
  const m = check({ ...good, kernel: { ...good.kernel, file: 'vmlinuz' }, root: { ...good.root, file: 'initrd.img' } });
  assert.equal(m.id, facts.id);
  assert.equal(m.name, 'pulled');
  assert.equal(m.kernel.file, 'kernel');
  assert.equal(m.root.file, 'root.cpio');
  assert.equal(m.source, facts.source);
  assert.equal(m.sourceDigest, facts.sourceDigest);
  assert.equal((m as any).extra, undefined);
  assert.deepEqual(m.argv, good.argv);
  assert.deepEqual(m.env, good.env);
});

const refused: [string, unknown, RegExp][] = [
  ['kernel.file with ..', withField('kernel.file', '../../../tmp/canary/x'), /kernel\.file must be a plain file name/],
  ['root.file absolute', withField('root.file', '/etc/cron.d/x'), /root\.file must be a plain file name/],
  ['kernel.file not a string', withField('kernel.file', 7), /kernel\.file/],
  ['argv not strings', withField('argv', ['/app', 1]), /argv\[1\] must be a string/],
  ['argv with NUL', withField('argv', ['/app\0--evil']), /argv\[0\] contains a NUL/],
  ['argv not a list', withField('argv', '/app'), /argv must be a list/],
  ['env value with NUL', withField('env', { KEY: 'a\0b' }), /env\.KEY contains a NUL/],
  ['env name invalid', withField('env', { 'A=B': 'x' }), /bad variable name/],
  ['env value not a string', withField('env', { KEY: { toString: 1 } }), /env\.KEY must be a string/],
  ['env a list', withField('env', ['A=B']), /env must be an object/],
  ['mountPoints with ..', withField('mountPoints', ['/data/../etc']), /mountPoints\[0\] must be a canonical absolute path/],
  ['mountPoints relative', withField('mountPoints', ['data']), /canonical absolute/],
  ['mountPoints reserved', withField('mountPoints', ['/proc']), /reserved/],
  ['mountPoints twice', withField('mountPoints', ['/a', '/a']), /twice/],
  ['cwd with ..', withField('cwd', '/app/..'), /cwd must be a canonical/],
  ['memory not an integer', withField('defaultMemoryMb', 64.5), /defaultMemoryMb/],
  ['memory absurd', withField('defaultMemoryMb', 1e12), /defaultMemoryMb/],
  ['memory a string', withField('defaultMemoryMb', '64'), /defaultMemoryMb/],
  ['another arch than its registry entry says', withField('arch', 'aarch64'), /WRONG_ARCH|aarch64/],
  ['an arch unik does not know', withField('arch', 'riscv64'), /WRONG_ARCH|riscv64/],
  ['another base', withField('base', 'osv'), /base is "osv"/],
  ['schema version 2', withField('schemaVersion', 2), /schemaVersion/],
  ['a port out of range', withField('ports', [70000]), /ports\[0\]/],
  ['a provider with a slash', withField('provider', '../qemu'), /provider is not valid/],
  ['a config hash that is a path', withField('kernel.configHash', '../../x'), /configHash/],
  ['a kernel size that lies', withField('kernel.sizeBytes', 5), /kernel\.sizeBytes says 5 bytes, but the file holds 1000/],
  ['root.kind not initramfs', withField('root.kind', 'disk'), /root\.kind/],
  ['a created date that is not', withField('created', 'yesterday'), /created/],
];
for (const [what, m, message] of refused)
  test(`unik manifest refused: ${what}`, () => {
    assert.throws(() => check(m), (e: Error & { code?: string }) => {
      assert.match(e.code ?? '', /UNIK_ERR_(BAD_IMAGE_MANIFEST|WRONG_ARCH)/);
      assert.match(e.message, message);
      return true;
    });
  });

test('unik manifest refused: not JSON, not an object', () => {
  assert.throws(() => checkPulledManifest('{', facts), /not valid JSON/);
  assert.throws(() => checkPulledManifest('[1]', facts), /not a JSON object/);
  assert.throws(() => checkPulledManifest('null', facts), /not a JSON object/);
});

test('canonical absolute paths', () => {
  for (const p of ['/', '/data', '/a/b.c']) assert.ok(isCanonicalAbsolute(p), p);
  for (const p of ['', 'a', '/a/', '//a', '/a//b', '/a/./b', '/a/..', '/a\0b']) assert.ok(!isCanonicalAbsolute(p), JSON.stringify(p));
});

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const oci = (over: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D(1), size: 300 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D(2), size: 1000, annotations: { 'org.opencontainers.image.title': 'unik/kernel' } }],
      ...over,
    }),
  );

test('OCI manifest: a good one passes; hostile shapes, digests, sizes and media types are refused', () => {
  const m = checkOciManifest(oci(), '', 'm');
  assert.equal(m.layers[0]!.size, 1000);
  const layer = (l: Record<string, unknown>) => oci({ layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D(2), size: 1000, ...l }] });
  const cases: [Buffer, RegExp][] = [
    [Buffer.from('not json'), /not valid JSON/],
    [oci({ schemaVersion: 1 }), /schemaVersion/],
    [oci({ mediaType: 'application/vnd.oci.image.index.v1+json' }), /not an OCI image manifest/],
    [oci({ layers: [] }), /1 to 16 layers/],
    [oci({ layers: Array(17).fill({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D(2), size: 1 }) }), /1 to 16 layers/],
    [layer({ digest: 'sha256:../../../etc/passwd' }), /is not sha256:<64 hex digits>/],
    [layer({ digest: `sha256:${'A'.repeat(64)}` }), /is not sha256/],
    [layer({ digest: `sha512:${'a'.repeat(128)}` }), /is not sha256/],
    [layer({ size: -1 }), /declares size -1/],
    [layer({ size: 0 }), /declares size 0/],
    [layer({ size: 1.5 }), /declares size 1\.5/],
    [layer({ size: '100' }), /declares size "100"/],
    [layer({ size: LIMITS.imageBytes + 1 }), /declares size/],
    [layer({ mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip' }), /media type/],
    [oci({ config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D(1), size: LIMITS.configBytes + 1 } }), /config: declares size/],
    [oci({ layers: Array(2).fill({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D(2), size: LIMITS.imageBytes }) }), /add up to/],
  ];
  for (const [body, message] of cases) assert.throws(() => checkOciManifest(body, '', 'm'), message, body.toString().slice(0, 200));
});

test('OCI index: picks the wanted platform, checks its descriptor, writes back only what it checked; config: os and arch', () => {
  const ix = (manifests: unknown) => Buffer.from(JSON.stringify({ schemaVersion: 2, manifests }));
  const amd = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D(3), size: 500, platform: { os: 'linux', architecture: 'amd64' } };
  assert.equal(pickPlatform(ix([{ ...amd, platform: { os: 'linux', architecture: 'arm64' } }, amd]), 'i', 'amd64').entry?.digest, D(3));
  assert.equal(pickPlatform(ix([amd, { ...amd, digest: D(4), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }]), 'i', 'arm64').entry?.digest, D(4));
  assert.deepEqual(pickPlatform(ix([{ ...amd, platform: { os: 'windows', architecture: 'amd64' } }]), 'i', 'amd64'), { platforms: ['windows/amd64'] });
  // platform strings are shown and written back (push merges an index): odd ones become "?"
  assert.deepEqual(pickPlatform(ix([{ ...amd, platform: { os: 'linux\n', architecture: 'a'.repeat(200) } }]), 'i', 'amd64'), { platforms: ['?/?'] });
  assert.throws(() => pickPlatform(ix([{ ...amd, digest: 'sha256:../x' }]), 'i', 'amd64'), /not sha256/);
  assert.throws(() => pickPlatform(ix([{ ...amd, mediaType: 'application/vnd.oci.image.index.v1+json' }]), 'i', 'amd64'), /media type/);
  assert.throws(() => pickPlatform(ix('x'), 'i', 'amd64'), /1 to 256 manifests/);

  assert.deepEqual(checkImageConfig(Buffer.from('{"os":"windows","architecture":"arm64"}'), 'c'), { os: 'windows', architecture: 'arm64' });
  assert.throws(() => checkImageConfig(Buffer.from('[]'), 'c'), /not a JSON object/);
  assert.throws(() => checkDigest(`sha256:${'0'.repeat(63)}`, 'd'), /not sha256/);
});

test('push merging: other platforms kept as the registry gave them, ours added or replaced, hostile platforms refused', () => {
  const ours = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D(9), size: 700 };
  const entry = (digest: string, platform: unknown, extra: Record<string, unknown> = {}) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 500, platform, ...extra });
  const index = (manifests: unknown[]) => ({ kind: 'index' as const, body: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })) });
  const parse = (r: { index: Buffer } | undefined) => JSON.parse(r!.index.toString());
  // nothing there, or only this architecture: a plain manifest will do
  assert.equal(mergedIndex({ kind: 'none' }, 'arm64', ours, 'w'), undefined);
  assert.equal(mergedIndex({ kind: 'image', descriptor: ours, os: 'linux', architecture: 'arm64' }, 'arm64', ours, 'w'), undefined);
  assert.equal(mergedIndex(index([entry(D(1), { os: 'linux', architecture: 'arm64' })]), 'arm64', ours, 'w'), undefined);
  // a single image of another architecture becomes the index's first entry
  const two = mergedIndex({ kind: 'image', descriptor: { ...ours, digest: D(1) }, os: 'linux', architecture: 'amd64' }, 'arm64', ours, 'w');
  assert.deepEqual(two!.platforms, ['linux/amd64', 'linux/arm64']);
  assert.equal(parse(two).mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(parse(two).manifests.map((m: any) => m.digest), [D(1), D(9)]);
  // an index: entries of other platforms untouched (fields unik does not read included), ours replaced
  const other = entry(D(2), { os: 'linux', architecture: 'riscv64', 'os.features': ['x'] }, { annotations: { ['k'.repeat(300)]: 'v'.repeat(900) }, artifactType: 'a/b' });
  const odd = entry(D(3), { os: 'Linux', architecture: 'x86-64' });
  const merged = parse(mergedIndex(index([other, odd, entry(D(4), { os: 'linux', architecture: 'arm64' })]), 'arm64', ours, 'w'));
  assert.deepEqual(merged.manifests.slice(0, 2), [other, odd]);
  assert.deepEqual(merged.manifests.map((m: any) => m.digest), [D(2), D(3), D(9)]);
  // refused: a platform that cannot be written back, a bad digest, too many entries
  assert.throws(() => mergedIndex({ kind: 'image', descriptor: ours, os: 'linux', architecture: '\u001b]0;x' }, 'arm64', ours, 'w'), /cannot write into an index/);
  assert.throws(() => mergedIndex(index([entry('sha256:../x', {})]), 'arm64', ours, 'w'), /not sha256/);
  assert.throws(() => mergedIndex(index(Array.from({ length: 256 }, (_, n) => entry(D(1), { os: 'linux', architecture: `a${n}` }))), 'arm64', ours, 'w'), /at most 256/);
  assert.throws(() => mergedIndex(index(['x']), 'arm64', ours, 'w'), /entry 0 is not a descriptor/);
});
