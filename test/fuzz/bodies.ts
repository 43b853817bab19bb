import fc from 'fast-check';
import { MOUNT_POINT, VOLUME_NAME } from './fixtures.js';
import { gzip, multipart, tar, type Part, type TarEntry } from './uploads.js';
import { anyJson, anyText, field, imageRef, mountPoint, stringMap, validName } from './values.js';

// Request bodies: JSON shaped after each route's schema (right and wrong types mixed), JSON
// that is not JSON, and uploads (multipart forms carrying tar archives, hostile ones included).

export interface Body {
  contentType?: string;
  data?: Buffer;
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v) ?? 'null');

/** Broken or hostile JSON text. */
const badJson = fc.oneof(
  fc.constantFrom(
    '{"Image": ',
    '{',
    '}',
    '[',
    'nul',
    '{"a":1,}',
    "{'Image': 'x'}",
    '{"Image": "\\ud800"}',
    '{"__proto__": {"polluted": true}, "Image": "fuzz-img"}',
    '{"constructor": {"prototype": {"polluted": true}}}',
    '\uFEFF{"Image": "fuzz-img"}',
    '{"Image": "fuzz-img"}{"Image": "fuzz-img"}',
    '{"Image": 1e999}',
    '',
    '\0',
  ),
  fc.nat({ max: 200_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.nat({ max: 200_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 64 }),
);

/** unik's POST /instances/run body: near-valid, so the checks past the schema are reached. */
export const runBody = fc.record(
  {
    ImageName: field(imageRef),
    InstanceName: field(fc.oneof(validName, anyText)),
    Env: field(fc.oneof(stringMap, fc.constant(null))),
    MemoryMb: field(fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.constant(0), fc.constant(2 ** 53))),
    Ports: field(
      fc.oneof(
        fc.constant(null),
        fc.array(
          fc.oneof(
            fc.constantFrom('8080:8080', '0:80', '70000:1', '127.0.0.1:1:2/udp', 'a:b', '1:2:3:4', '300.1.1.1:80:80'),
            anyText,
            fc.record({ HostIp: field(anyText), HostPort: field(fc.integer({ min: -1, max: 70_000 })), GuestPort: field(fc.integer({ min: -1, max: 70_000 })), Protocol: field(fc.constantFrom('tcp', 'udp', 'sctp')) }, { requiredKeys: [] }),
          ),
          { maxLength: 3 },
        ),
      ),
    ),
    Mounts: field(fc.oneof(fc.constant(null), fc.dictionary(mountPoint, fc.oneof(fc.constant(VOLUME_NAME), anyText), { maxKeys: 2 }))),
    NoCleanup: field(fc.boolean()),
    DebugMode: field(fc.boolean()),
  },
  { requiredKeys: [] },
);

const portKey = fc.oneof(fc.constantFrom('80/tcp', '53/udp', '8080', '80/sctp', '0/tcp', '99999/tcp', 'abc'), anyText);

/** Docker's container create body (the fields unik reads, and a few it ignores). */
export const createBody = fc.record(
  {
    Image: field(imageRef),
    Cmd: field(fc.oneof(fc.constant(null), fc.array(anyText, { maxLength: 3 }), anyText)),
    Entrypoint: field(fc.oneof(fc.constant(null), fc.constant([]), fc.constant(''), fc.array(anyText, { maxLength: 2 }))),
    Env: field(fc.oneof(fc.constant(null), fc.array(fc.oneof(fc.constantFrom('A=b', '=x', 'NOEQ', 'B=', '1X=y', 'A=\0'), anyText), { maxLength: 4 }))),
    Labels: field(fc.oneof(fc.constant(null), stringMap)),
    Tty: field(fc.boolean()),
    HostConfig: field(
      fc.record(
        {
          PortBindings: field(fc.oneof(fc.constant(null), fc.dictionary(portKey, fc.oneof(fc.constant(null), fc.array(fc.record({ HostIp: field(anyText), HostPort: field(fc.oneof(fc.constantFrom('', '0', '8080', '65536', '-1', 'x'), anyText)) }, { requiredKeys: [] }), { maxLength: 2 })), { maxKeys: 2 }))),
          Memory: field(fc.oneof(fc.integer({ min: -1, max: 2 ** 31 }), fc.constant(2 ** 53), fc.constant(0))),
          Binds: field(fc.oneof(fc.constant(null), fc.array(fc.oneof(fc.constantFrom(`${VOLUME_NAME}:${MOUNT_POINT}`, '/etc:/data', './x:/data', 'a', ':', 'v:', ':/d', `${VOLUME_NAME}:/proc`), anyText), { maxLength: 2 }))),
          AutoRemove: field(fc.boolean()),
          Privileged: field(fc.boolean()),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

export const loginBody = fc.record({ Registry: field(anyText), Username: field(anyText), Password: field(anyText), Insecure: field(fc.boolean()) }, { requiredKeys: [] });

export const dockerVolumeBody = fc.record(
  {
    Name: field(fc.oneof(validName, anyText)),
    Driver: field(fc.constantFrom('local', 'unik', '')),
    DriverOpts: field(fc.oneof(fc.constant(null), fc.record({ size: field(fc.oneof(fc.constantFrom('1', '2', '0', '-1', '1.5', '9'.repeat(30), '99999999'), anyText)), type: field(fc.constantFrom('ext4', 'ext2', 'fat', 'ntfs', '')) }, { requiredKeys: [] }))),
    Labels: field(stringMap),
  },
  { requiredKeys: [] },
);

/** A JSON body for a route with a schema: near-valid mostly, then anything, then broken text. */
export function jsonBody(shape: fc.Arbitrary<unknown>): fc.Arbitrary<Body> {
  const ct = fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/JSON', 'application/json; charset=latin1', 'application/jsonx', '');
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(shape, ct).map(([v, contentType]) => ({ contentType, data: json(v) })) },
    { weight: 2, arbitrary: fc.tuple(anyJson, ct).map(([v, contentType]) => ({ contentType, data: json(v) })) },
    { weight: 2, arbitrary: badJson.map((s) => ({ contentType: 'application/json', data: Buffer.from(s) })) },
    { weight: 1, arbitrary: fc.constant({}) },
    { weight: 1, arbitrary: fc.constant({ contentType: 'application/json' }) },
  );
}

// --- uploads --------------------------------------------------------------------------------

/** Entry names that would make the daemon detect a language and start a real build: never sent. */
const MARKERS = /(^|\/)(go\.mod|package\.json|requirements\.txt|Makefile|pom\.xml|unik\.ya?ml)$|\.(c|cc|cpp|py|java|jar)$/i;

/**
 * Tar entries: harmless data files, and entries that try to leave the archive's folder (up
 * the tree, absolute, through a symlink, or as a hard link to the secret) or odd names.
 */
export function tarEntries(outside: string, secretFile: string): fc.Arbitrary<TarEntry[]> {
  const up = (n: number) => '../'.repeat(n);
  const hostile = fc.oneof(
    fc.nat({ max: 12 }).map((n): TarEntry[] => [{ name: `${up(n + 1)}${outside.slice(1)}/pwned-up-${n}`, type: 'file', data: Buffer.from('pwned') }]),
    fc.constant<TarEntry[]>([{ name: `${outside}/pwned-abs`, type: 'file', data: Buffer.from('pwned') }]),
    fc.constant<TarEntry[]>([{ name: 'lnk', type: 'symlink', linkname: outside }, { name: 'lnk/pwned-sym', type: 'file', data: Buffer.from('pwned') }]),
    fc.constant<TarEntry[]>([{ name: 'dir', type: 'dir' }, { name: 'dir/up', type: 'symlink', linkname: '../..' }, { name: 'dir/up/pwned-symup', type: 'file', data: Buffer.from('pwned') }]),
    fc.constant<TarEntry[]>([{ name: 'hl', type: 'hardlink', linkname: secretFile }]),
    fc.nat({ max: 12 }).map((n): TarEntry[] => [{ name: 'hl-up', type: 'hardlink', linkname: `${up(n + 1)}${secretFile.slice(1)}` }]),
    fc.constant<TarEntry[]>([{ name: 'sl', type: 'symlink', linkname: secretFile }]),
    anyText.map((name): TarEntry[] => [{ name, type: 'file', data: Buffer.from('odd name') }]),
  );
  const benign = fc.array(
    fc.record({ n: fc.nat({ max: 999 }), data: fc.uint8Array({ maxLength: 4096 }) }).map(({ n, data }): TarEntry => ({ name: `data-${n}.bin`, type: 'file', data: Buffer.from(data) })),
    { minLength: 1, maxLength: 3 },
  );
  return fc
    .tuple(benign, fc.option(hostile, { freq: 2 }))
    .map(([b, h]) => [...b, ...(h ?? [])].filter((e) => !MARKERS.test(e.name)));
}

/** A tar upload's bytes: plain, gzipped, cut short, bit-flipped, or not a tar at all. */
export function tarBytes(outside: string, secretFile: string): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.tuple(tarEntries(outside, secretFile), fc.boolean()).map(([e, z]) => (z ? gzip(tar(e)) : tar(e))) },
    { weight: 1, arbitrary: fc.tuple(tarEntries(outside, secretFile), fc.nat(), fc.boolean()).map(([e, cut, z]) => { const b = z ? gzip(tar(e)) : tar(e); return b.subarray(0, cut % b.length); }) },
    { weight: 1, arbitrary: fc.tuple(tarEntries(outside, secretFile), fc.array(fc.nat(), { minLength: 1, maxLength: 8 })).map(([e, at]) => { const b = Buffer.from(tar(e)); for (const i of at) b[i % b.length] = b[i % b.length]! ^ 0xff; return b; }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((u) => Buffer.from(u)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((u) => gzip(Buffer.from(u))) },
  );
}

const boundary = fc.constantFrom('fuzzBoundary', 'x', '----WebKitFormBoundary7MA4YWxkTrZu0gW', '"quoted"');

/** A multipart body with a tarfile and form fields (each a value from `fields`), or a broken one. */
export function multipartBody(file: fc.Arbitrary<Buffer>, fields: fc.Arbitrary<[string, string][]>): fc.Arbitrary<Body> {
  const parts = fc.tuple(file, fields, fc.constantFrom('tarfile', 'tarfile', 'tarfile', 'file', ''), fc.boolean()).map(([data, fs, fileField, twice]) => {
    const list: Part[] = fs.map(([name, v]) => ({ name, data: Buffer.from(v) }));
    list.push({ name: fileField, filename: 'app.tar.gz', contentType: 'application/gzip', data });
    if (twice) list.push({ name: 'tarfile', filename: 'again.tgz', data: Buffer.from('second') });
    return list;
  });
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(boundary, parts).map(([b, p]) => ({ contentType: `multipart/form-data; boundary=${b}`, data: multipart(b.replace(/"/g, ''), p) })) },
    { weight: 1, arbitrary: fc.tuple(boundary, parts).map(([b, p]) => ({ contentType: `multipart/form-data; boundary=${b}`, data: multipart(b.replace(/"/g, ''), p, true) })) },
    { weight: 1, arbitrary: parts.map((p) => ({ contentType: 'multipart/form-data', data: multipart('nob', p) })) },
    { weight: 1, arbitrary: parts.map((p) => ({ contentType: 'multipart/form-data; boundary=other', data: multipart('fuzzBoundary', p) })) },
    { weight: 1, arbitrary: fc.nat({ max: 40 }).map((n) => ({ contentType: 'multipart/form-data; boundary=b', data: multipart('b', Array.from({ length: n }, (_, i) => ({ name: `f${i}`, data: Buffer.from('v') }))) })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((u) => ({ contentType: 'multipart/form-data; boundary=b', data: Buffer.from(u) })) },
    { weight: 1, arbitrary: fc.constant<Body>({}) },
    { weight: 1, arbitrary: jsonBody(fc.dictionary(anyText, anyText, { maxKeys: 3 })) },
  );
}
