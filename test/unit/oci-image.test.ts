// Container images into app roots (src/compilers/oci-image.ts): layers applied in order with
// whiteouts and opaque directories, the config mapped to argv/env/cwd/user/ports/signal/volumes,
// from an OCI layout and a docker-archive alike; every hostile image refused with a clear error,
// and nothing written outside the import's own folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { importImage, type ImportOptions } from '../../src/compilers/oci-image.js';
import type { AppRoot, RootEntry } from '../../src/compilers/types.js';
import { statusOf } from '../../src/daemon/http/errors.js';
import { parseSource } from '../../src/hub/image-source.js';
import { isUnikError, type UnikError } from '../../src/model/errors.js';
import { sha256, tar, writeDockerArchive, writeLayout, type Entry, type ImageSpec } from './oci-image-craft.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nweb:x:101:102:web server:/var/www:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nweb:x:102:\nssl-cert:x:110:web,other\nadm:x:4:other\n';

/** A small distribution-like base, and a second layer that hides and replaces parts of it. */
const base: Entry[] = [
  { name: './', type: '5' },
  { name: 'etc/', type: '5' },
  { name: 'etc/passwd', data: PASSWD },
  { name: 'etc/group', data: GROUP },
  { name: 'usr/', type: '5' },
  { name: 'usr/bin/', type: '5' },
  { name: 'usr/bin/server', data: '#!static', mode: 0o755 },
  { name: 'usr/bin/ping', data: 'P', mode: 0o4755 },
  { name: 'usr/bin/server-hard', type: '1', linkname: 'usr/bin/server' },
  { name: 'bin', type: '2', linkname: 'usr/bin' },
  { name: 'etc/alternatives/', type: '5' },
  { name: 'etc/alternatives/srv', type: '2', linkname: '/usr/bin/server' },
  { name: 'dev/', type: '5' },
  { name: 'dev/null', type: '3' },
  { name: 'var/', type: '5' },
  { name: 'var/www/', type: '5', uid: 101, gid: 102, mode: 0o750 },
  { name: 'var/www/old.html', data: 'old', uid: 101, gid: 102 },
  { name: 'var/cache/', type: '5' },
  { name: 'var/cache/a', data: 'a' },
  { name: 'var/cache/sub/', type: '5' },
  { name: 'var/cache/sub/b', data: 'b' },
  { name: 'tmp/', type: '5', mode: 0o1777 },
];
const top: Entry[] = [
  { name: 'var/www/.wh.old.html', data: '' },
  { name: 'var/www/index.html', data: 'hello', uid: 101, gid: 102 },
  { name: 'var/cache/.wh..wh..opq', data: '' },
  { name: 'var/cache/c', data: 'c' },
  { name: 'usr/bin/.wh.ping', data: '' },
  { name: 'usr/bin/empty', data: '', mode: 0o644 },
];
const config = {
  User: 'web',
  Entrypoint: ['server'],
  Cmd: ['--port', '8080'],
  Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=hi=there'],
  WorkingDir: '/var/www',
  ExposedPorts: { '8080/tcp': {}, '53/udp': {}, '9000': {} },
  StopSignal: 'SIGQUIT',
  Volumes: { '/data': {}, '/var/log/app/': {} },
};
const image: ImageSpec = { layers: [base, top], config };

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'unik-oci-'));
  const canary = join(dir, 'canary');
  mkdirSync(canary);
  writeFileSync(join(dir, 'secret'), 'THE-SECRET');
  const work = join(dir, 'work');
  const opts = (extra: Partial<ImportOptions> = {}): ImportOptions => ({ workDir: work, arch: 'amd64', args: [], progress: () => {}, ...extra });
  return { dir, canary, work, opts, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const byPath = (root: AppRoot) => new Map(root.entries.map((e) => [e.path, e]));

/** Everything under a folder (relative), and whether any of it is a symlink. */
function walk(dir: string, base = ''): string[] {
  let out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = `${base}${e.name}`;
    assert.ok(!e.isSymbolicLink(), `${rel} is a symlink on the host`);
    out.push(rel);
    if (e.isDirectory()) out = out.concat(walk(join(dir, e.name), `${rel}/`));
  }
  return out;
}

function checkRoot(root: AppRoot) {
  const m = byPath(root);
  assert.deepEqual(root.argv, ['/usr/local/bin/server', '--port', '8080'].map((a, i) => (i === 0 ? a.replace('/usr/local/bin', '/usr/bin') : a)));
  assert.equal(root.cwd, '/var/www');
  assert.deepEqual(root.env, { PATH: '/usr/local/bin:/usr/bin:/bin', GREETING: 'hi=there' });
  assert.deepEqual(root.user, { uid: 101, gid: 102, groups: [102, 110] });
  assert.deepEqual(root.ports, [8080, 9000]);
  assert.equal(root.stopSignal, 'SIGQUIT');
  assert.deepEqual(root.mountPoints, ['/data', '/var/log/app']);
  assert.equal(root.rootDisk, true);
  // whiteout, opaque dir, the layer's own files
  assert.ok(!m.has('/var/www/old.html'), 'the whiteout hid old.html');
  assert.ok(!m.has('/usr/bin/ping'), 'the whiteout hid ping');
  assert.deepEqual([...m.keys()].filter((p) => p.startsWith('/var/cache/')), ['/var/cache/c'], 'the opaque dir holds only the top layer');
  const index = m.get('/var/www/index.html') as Extract<RootEntry, { kind: 'file' }>;
  assert.equal(readFileSync(index.source, 'utf8'), 'hello');
  assert.equal(index.uid, 101);
  assert.equal(index.gid, 102);
  const www = m.get('/var/www')!;
  assert.equal(www.kind, 'dir');
  assert.equal((www as { mode: number }).mode, 0o750);
  assert.equal((m.get('/tmp') as { mode: number }).mode, 0o1777, 'the sticky bit is kept for the guest');
  assert.deepEqual(m.get('/bin'), { kind: 'symlink', path: '/bin', target: 'usr/bin', uid: 0, gid: 0 });
  assert.equal((m.get('/etc/alternatives/srv') as { target: string }).target, '/usr/bin/server');
  // a hard link is the same file on the host
  const a = m.get('/usr/bin/server') as { source: string };
  const b = m.get('/usr/bin/server-hard') as { source: string };
  assert.equal(statSync(a.source).ino, statSync(b.source).ino);
  assert.ok(!m.has('/dev/null'), 'device nodes are skipped');
  assert.equal(readFileSync((m.get('/usr/bin/empty') as { source: string }).source, 'utf8'), '');
}

test('an OCI layout: layers, whiteouts, an opaque dir, User by name, Entrypoint+Cmd, ports, signal, volumes', async () => {
  const t = setup();
  try {
    const layout = join(t.dir, 'layout');
    const { manifest } = writeLayout(layout, image, 'v1');
    const steps: string[] = [];
    const root = await importImage({ source: `oci:${layout}:v1` }, t.opts({ progress: (p) => steps.push(`${p.step}: ${p.message}`) }));
    checkRoot(root);
    assert.equal(root.sourceDigest, manifest);
    assert.ok(steps.some((s) => /skipped 1 device node/.test(s)), steps.join('\n'));
    assert.ok(steps.some((s) => /53\/udp/.test(s)), 'the udp port is named as not published');
    // the host tree: no symlinks, nothing setuid, owner-readable
    for (const f of walk(join(t.work, 'root'))) {
      const st = lstatSync(join(t.work, 'root', f));
      assert.equal(st.mode & 0o7000, 0, `${f} has no setuid/setgid/sticky bit on the host`);
      assert.ok(st.mode & 0o400);
    }
    assert.deepEqual(readdirSync(t.canary), []);
  } finally {
    t.done();
  }
});

test('the same image as a docker-archive gives the same root; --args replace Cmd', async () => {
  const t = setup();
  try {
    const file = join(t.dir, 'img.tar');
    writeDockerArchive(file, { ...image, gzip: false });
    checkRoot(await importImage({ source: `docker-archive:${file}` }, t.opts()));
    rmSync(t.work, { recursive: true });
    const root = await importImage({ source: `docker-archive:${file}:example/app:1` }, t.opts({ args: ['-v'] }));
    assert.deepEqual(root.argv, ['/usr/bin/server', '-v']);
    rmSync(t.work, { recursive: true });
    await assert.rejects(importImage({ source: `docker-archive:${file}:other:2` }, t.opts()), /holds no image other:2/);
  } finally {
    t.done();
  }
});

test('User forms: uid, uid:gid, name:group; an unknown name is refused', async () => {
  const t = setup();
  try {
    const cases: [string, unknown][] = [
      ['1234', { uid: 1234, gid: 0, groups: [0] }],
      ['101', { uid: 101, gid: 102, groups: [102, 110] }],
      ['101:5', { uid: 101, gid: 5, groups: [5] }],
      ['web:adm', { uid: 101, gid: 4, groups: [4] }],
      ['root', { uid: 0, gid: 0, groups: [0] }],
    ];
    for (const [user, want] of cases) {
      const layout = join(t.dir, `l-${user.replace(':', '_')}`);
      writeLayout(layout, { layers: [base], config: { ...config, User: user } });
      rmSync(t.work, { recursive: true, force: true });
      const root = await importImage({ source: `oci:${layout}` }, t.opts());
      assert.deepEqual(root.user, want, user);
    }
    for (const [user, msg] of [['nobody', /no user "nobody"/], ['web:wheel', /no group "wheel"/]] as const) {
      const layout = join(t.dir, `bad-${user.replace(':', '_')}`);
      writeLayout(layout, { layers: [base], config: { ...config, User: user } });
      rmSync(t.work, { recursive: true, force: true });
      await assert.rejects(importImage({ source: `oci:${layout}` }, t.opts()), (e: UnikError) => e.code === 'UNIK_ERR_UNKNOWN_USER' && msg.test(e.message));
    }
    // /etc/passwd as a symlink out of the tree is not followed out: resolved inside the image's root
    const layout = join(t.dir, 'link-passwd');
    writeLayout(layout, { layers: [[{ name: 'etc/', type: '5' }, { name: 'etc/passwd', type: '2', linkname: '../../../../../../etc/passwd' }, { name: 'usr/bin/server', data: 'x', mode: 0o755 }]], config: { ...config, User: 'root' } });
    rmSync(t.work, { recursive: true, force: true });
    await assert.rejects(importImage({ source: `oci:${layout}` }, t.opts()), /no user "root" in the image's \/etc\/passwd/);
  } finally {
    t.done();
  }
});

test('sources are parsed strictly', () => {
  assert.deepEqual(parseSource('oci:/x/y:v2'), { kind: 'oci', path: '/x/y', tag: 'v2' });
  assert.deepEqual(parseSource('docker-archive:/a.tar:localhost/nginx:1'), { kind: 'docker-archive', path: '/a.tar', tag: 'localhost/nginx:1' });
  assert.deepEqual(parseSource('docker-archive'), { kind: 'docker-archive', path: '' });
  assert.equal(parseSource('127.0.0.1:5000/nginx:1').kind, 'registry');
  assert.throws(() => parseSource('Bad Ref'), (e: UnikError) => statusOf[e.kind] === 400);
  assert.throws(() => parseSource('oci:/x:bad tag'), (e: UnikError) => statusOf[e.kind] === 400);
});

// Hostile images: each is refused with a 4xx UnikError that says what is wrong, and nothing
// lands outside the work folder (the canary folder stays empty, the secret is never read in).
type Hostile = [string, (t: ReturnType<typeof setup>) => string, RegExp, string?];
const ok = (entries: Entry[]): Entry[] => [{ name: 'usr/bin/server', data: 'x', mode: 0o755 }, ...entries];
const layoutOf = (t: ReturnType<typeof setup>, layers: Entry[][], cfg: Record<string, unknown> = { Entrypoint: ['/usr/bin/server'] }) => {
  const d = join(t.dir, 'layout');
  writeLayout(d, { layers, config: cfg });
  return `oci:${d}`;
};
const hostile: Hostile[] = [
  ['a ../ entry', (t) => layoutOf(t, [ok([{ name: '../canary/x', data: 'escaped' }])]), /not a plain path inside the image/],
  ['a ../ entry deep inside', (t) => layoutOf(t, [ok([{ name: 'a/../../../canary/x', data: 'escaped' }])]), /not a plain path inside the image/],
  ['an absolute entry', (t) => layoutOf(t, [ok([{ name: `${t.canary}/x`, data: 'escaped' }])]), /absolute name/],
  ['a symlink out, then a file through it', (t) => layoutOf(t, [ok([{ name: 'out', type: '2', linkname: t.canary }, { name: 'out/x', data: 'escaped' }])]), /goes through "out", a symlink/],
  ['a symlink in one layer, a file through it in the next', (t) => layoutOf(t, [ok([{ name: 'out', type: '2', linkname: '../../canary' }]), [{ name: 'out/x', data: 'escaped' }]]), /goes through "out", a symlink/],
  ['a directory through a symlink', (t) => layoutOf(t, [ok([{ name: 'out', type: '2', linkname: t.canary }, { name: 'out/d/', type: '5' }])]), /goes through "out", a symlink/],
  ['a whiteout of ..', () => '', /names no file of its directory/],
  ['a whiteout ../x', (t) => layoutOf(t, [ok([{ name: '../.wh.canary', data: '' }])]), /not a plain path/],
  ['a whiteout through a symlink', (t) => layoutOf(t, [ok([{ name: 'out', type: '2', linkname: t.dir }]), [{ name: 'out/.wh.canary', data: '' }]]), /whiteout "out\/.wh.canary" goes through "out", a symlink/],
  ['a hard link to an absolute path', (t) => layoutOf(t, [ok([{ name: 'h', type: '1', linkname: join(t.dir, 'secret') }])]), /absolute name/],
  ['a hard link out with ..', (t) => layoutOf(t, [ok([{ name: 'h', type: '1', linkname: '../../secret' }])]), /not a plain path/],
  ['a hard link to a file the image lacks', (t) => layoutOf(t, [ok([{ name: 'h', type: '1', linkname: 'etc/shadow' }])]), /not a file the image holds/],
  ['a hard link through a symlink', (t) => layoutOf(t, [ok([{ name: 'out', type: '2', linkname: t.dir }, { name: 'h', type: '1', linkname: 'out/secret' }])]), /not a file the image holds/],
  ['an unknown entry type', (t) => layoutOf(t, [ok([{ name: 'x', type: 'Z' }])]), /cannot read|of type/],
  [
    'a manifest whose digest does not match',
    (t) => {
      const d = join(t.dir, 'layout');
      writeLayout(d, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] } }, 'v1', { manifest: (m) => Buffer.from(m.toString().replace('"schemaVersion":2', '"schemaVersion": 2')) });
      return `oci:${d}`;
    },
    /bytes have digest/,
    'UNIK_ERR_DIGEST_MISMATCH',
  ],
  [
    'a config whose digest does not match',
    (t) => {
      const d = join(t.dir, 'layout');
      writeLayout(d, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] } }, 'v1', { config: (c) => Buffer.from(c.toString().replace('/usr/bin/server', '/usr/bin/evilxx')) });
      return `oci:${d}`;
    },
    /holds bytes of digest/,
    'UNIK_ERR_DIGEST_MISMATCH',
  ],
  [
    'a layer that is not what the config says (diff_ids)',
    (t) => {
      const f = join(t.dir, 'img.tar');
      writeDockerArchive(f, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] } }, ['a:1'], () => tar(ok([{ name: 'etc/evil', data: 'x' }])));
      return `docker-archive:${f}`;
    },
    /unpacks to a tar of digest .* but the image config says/,
    'UNIK_ERR_DIGEST_MISMATCH',
  ],
  [
    'a docker-archive config not matching its file name',
    (t) => {
      const f = join(t.dir, 'img.tar');
      const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      writeFileSync(f, tar([{ name: `${'a'.repeat(64)}.json`, data: cfg }, { name: 'l.tar', data: tar(ok([])) }, { name: 'manifest.json', data: JSON.stringify([{ Config: `${'a'.repeat(64)}.json`, Layers: ['l.tar'] }]) }]));
      return `docker-archive:${f}`;
    },
    /whose bytes have digest/,
    'UNIK_ERR_DIGEST_MISMATCH',
  ],
  [
    'a docker-archive naming a layer outside it',
    (t) => {
      const f = join(t.dir, 'img.tar');
      const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      writeFileSync(f, tar([{ name: 'c.json', data: cfg }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['../secret'] }]) }]));
      return `docker-archive:${f}`;
    },
    /not a plain path/,
  ],
  [
    'a manifest declaring an absurd layer size',
    (t) => {
      const d = join(t.dir, 'layout');
      writeLayout(d, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] } }, 'v1', {
        manifest: (m) => {
          const j = JSON.parse(m.toString());
          j.layers[0].size = 2 ** 52;
          return Buffer.from(JSON.stringify(j));
        },
        index: (ix) => {
          const j = ix as { manifests: { digest: string; size: number }[] };
          const body = readFileSync(join(d, 'blobs', 'sha256', j.manifests[0]!.digest.slice(7)));
          j.manifests[0]!.digest = sha256(body);
          j.manifests[0]!.size = body.length;
          writeFileSync(join(d, 'blobs', 'sha256', sha256(body).slice(7)), body);
          return j;
        },
      });
      return `oci:${d}`;
    },
    /declares size \d+; it must be a whole number of bytes from 1 to/,
  ],
  ['a config with 5000 Cmd entries', (t) => layoutOf(t, [ok([])], { Cmd: Array(5000).fill('x') }), /Cmd is not a list of at most 4096/],
  ['a config with an absurd Env', (t) => layoutOf(t, [ok([])], { Env: ['=oops'] }), /not NAME=VALUE/],
  ['an unknown StopSignal', (t) => layoutOf(t, [ok([])], { Entrypoint: ['/usr/bin/server'], StopSignal: 'SIGNOPE' }), /StopSignal "SIGNOPE"/],
  ['no command', (t) => layoutOf(t, [ok([])], {}), /names no command/, 'UNIK_ERR_NO_COMMAND'],
  ['a command that is not there', (t) => layoutOf(t, [ok([])], { Cmd: ['nginx'] }), /"nginx" is on no directory of its PATH/, 'UNIK_ERR_NO_PROGRAM'],
  ['another architecture', (t) => {
    const d = join(t.dir, 'layout');
    writeLayout(d, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] }, architecture: 's390x' });
    return `oci:${d}`;
  }, /built for linux\/s390x, not linux\/amd64/, 'UNIK_ERR_WRONG_ARCH'],
  ['an oci: path that is not a layout', (t) => `oci:${t.canary}`, /does not say imageLayoutVersion|has no oci-layout/, 'UNIK_ERR_NOT_AN_IMAGE'],
];
// the whiteout of ".." is crafted as a name ending in ".wh.."
hostile[6]![1] = (t) => layoutOf(t, [ok([{ name: 'usr/.wh...', data: '' }])]);

for (const [what, make, message, code] of hostile)
  test(`refused: ${what}; nothing is written outside the import's folder`, async () => {
    const t = setup();
    try {
      const source = make(t);
      await assert.rejects(importImage({ source }, t.opts()), (e: Error) => {
        assert.ok(isUnikError(e), `a UnikError, not ${e.stack}`);
        assert.match(e.message, message);
        const status = statusOf[e.kind];
        assert.ok(status >= 400 && status < 500, `status ${status}`);
        if (code) assert.equal(e.code, code);
        return true;
      });
      assert.deepEqual(readdirSync(t.canary), [], 'the canary folder is untouched');
      assert.equal(readFileSync(join(t.dir, 'secret'), 'utf8'), 'THE-SECRET');
      assert.ok(readdirSync(t.dir).every((n) => ['canary', 'secret', 'work', 'layout', 'img.tar'].includes(n)), readdirSync(t.dir).join(' '));
      // nothing in the work folder is a link, and no file there holds the secret
      try {
        for (const f of walk(t.work)) {
          const p = join(t.work, f);
          if (statSync(p).isFile()) assert.notEqual(readFileSync(p, 'utf8'), 'THE-SECRET', `${f} holds the secret`);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    } finally {
      t.done();
    }
  });

test('caps: a gzip bomb layer and too many entries are refused as too large', async () => {
  const t = setup();
  try {
    const layout = join(t.dir, 'layout');
    writeLayout(layout, { layers: [ok([{ name: 'zeros', data: Buffer.alloc(8 << 20) }])], config: { Entrypoint: ['/usr/bin/server'] } });
    const limits = { downloadBytes: 1 << 30, unpackedBytes: 4 << 20, entries: 1000, layers: 10 };
    await assert.rejects(importImage({ source: `oci:${layout}` }, t.opts({ limits })), (e: UnikError) => e.code === 'UNIK_ERR_IMAGE_TOO_LARGE' && /decompression bomb/.test(e.message));
    rmSync(t.work, { recursive: true, force: true });
    const many = join(t.dir, 'many');
    writeLayout(many, { layers: [ok(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: 'x' })))], config: { Entrypoint: ['/usr/bin/server'] } });
    await assert.rejects(importImage({ source: `oci:${many}` }, t.opts({ limits: { ...limits, unpackedBytes: 1 << 30, entries: 20 } })), (e: UnikError) => e.code === 'UNIK_ERR_IMAGE_TOO_LARGE' && /cap on entries/.test(e.message));
    rmSync(t.work, { recursive: true, force: true });
    await assert.rejects(importImage({ source: `oci:${many}` }, t.opts({ limits: { ...limits, downloadBytes: 100 } })), (e: UnikError) => e.code === 'UNIK_ERR_BAD_IMAGE' && /from 1 to 100\b/.test(e.message) && /stored nothing$/.test(e.hint ?? ''));
  } finally {
    t.done();
  }
});

test('a layer compressed twice, or with zstd, is refused', async () => {
  const t = setup();
  try {
    const d = join(t.dir, 'layout');
    writeLayout(d, { layers: [ok([])], config: { Entrypoint: ['/usr/bin/server'] } });
    // replace the layer blob with gzip(gzip(tar)) under its own digest, and fix the manifest and index
    const ix = JSON.parse(readFileSync(join(d, 'index.json'), 'utf8'));
    const m = JSON.parse(readFileSync(join(d, 'blobs/sha256', ix.manifests[0].digest.slice(7)), 'utf8'));
    const cfg = JSON.parse(readFileSync(join(d, 'blobs/sha256', m.config.digest.slice(7)), 'utf8'));
    const twice = gzipSync(gzipSync(tar(ok([]))));
    writeFileSync(join(d, 'blobs/sha256', sha256(twice).slice(7)), twice);
    m.layers[0] = { ...m.layers[0], digest: sha256(twice), size: twice.length };
    cfg.rootfs.diff_ids = [sha256(gzipSync(tar(ok([]))))];
    const cb = Buffer.from(JSON.stringify(cfg));
    writeFileSync(join(d, 'blobs/sha256', sha256(cb).slice(7)), cb);
    m.config = { ...m.config, digest: sha256(cb), size: cb.length };
    const mb = Buffer.from(JSON.stringify(m));
    writeFileSync(join(d, 'blobs/sha256', sha256(mb).slice(7)), mb);
    ix.manifests[0] = { ...ix.manifests[0], digest: sha256(mb), size: mb.length };
    writeFileSync(join(d, 'index.json'), JSON.stringify(ix));
    await assert.rejects(importImage({ source: `oci:${d}` }, t.opts()), /compressed twice/);
  } finally {
    t.done();
  }
});

test("podman's whiteouts: after a layer's first, each is an empty file that still carries a link name; they hide what they name, and a linked file with data is refused", async () => {
  const t = setup();
  try {
    const lower: Entry[] = [
      { name: 'etc/', type: '5' },
      { name: 'etc/motd', data: 'hello' },
      { name: 'usr/', type: '5' },
      { name: 'usr/share/', type: '5' },
      { name: 'usr/share/man/', type: '5' },
      { name: 'usr/share/man/ls.1', data: 'man' },
      { name: 'usr/share/info/', type: '5' },
      { name: 'bin/', type: '5' },
      { name: 'bin/app', data: 'app', mode: 0o755 },
    ];
    // as containers/storage writes them (checked on a podman-built layer here)
    const upper: Entry[] = [
      { name: 'etc/.wh.motd' },
      { name: 'usr/share/.wh.man', linkname: 'etc/motd' },
      { name: 'usr/share/.wh.info', linkname: 'etc/motd' },
    ];
    const layout = join(t.dir, 'podman');
    writeLayout(layout, { layers: [lower, upper], config: { Cmd: ['/bin/app'] } });
    const m = byPath(await importImage({ source: `oci:${layout}` }, t.opts()));
    for (const gone of ['/etc/motd', '/usr/share/man', '/usr/share/man/ls.1', '/usr/share/info']) assert.ok(!m.has(gone), `${gone} is hidden`);
    assert.ok(m.has('/bin/app') && m.has('/usr/share'));

    // a regular file with a link name and a body is no whiteout: the layer is refused, nothing written outside
    const bad = join(t.dir, 'linked-file');
    writeLayout(bad, { layers: [lower, [{ name: 'etc/passwd', data: 'root:x:0:0::/:/bin/sh\n', linkname: '../../secret' }]], config: { Cmd: ['/bin/app'] } });
    await assert.rejects(importImage({ source: `oci:${bad}` }, t.opts({ workDir: join(t.dir, 'work2') })), (e: UnikError) => e.code?.startsWith('UNIK_ERR_') && /linkpath forbidden/.test(e.message));
    assert.deepEqual(readdirSync(t.canary), []);
  } finally {
    t.done();
  }
});
