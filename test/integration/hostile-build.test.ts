// Hostile uploads against a real daemon: tars that climb out, links to host secrets, unik.yaml
// paths and library lists that name host files, and Makefiles that attack the host. Each is
// refused with a clear error, and the test proves nothing was read, written, run or leaked: a
// random canary in a secret file outside never shows up in an answer, the daemon's log or an
// image root, and the files an attack would create do not exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countingServer } from './counting-server.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon } from './harness.js';

const TIMEOUT_S = 6;
const MEMORY_MB = 160;
const d = suiteDaemon();
// a daemon whose builds have small limits, to see them enforced
d.env.UNIK_BUILD_TIMEOUT = String(TIMEOUT_S);
d.env.UNIK_BUILD_MEMORY_MB = String(MEMORY_MB);

const scratch = mkdtempSync(join(tmpdir(), 'unik-hostile-'));
const CANARY = `canary_${Math.random().toString(36).slice(2)}`;
/** names of files an attack would create: random too, but never the canary (refusals may quote names) */
const TOKEN = `pwned_${Math.random().toString(36).slice(2)}`;
const SECRET = join(scratch, 'secret');
writeFileSync(SECRET, `${CANARY}\n`);
const OUTDIR = join(scratch, 'outdir');
mkdirSync(OUTDIR);

type Entry = { name: string; type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'chr'; data?: string; target?: string };
/** A tar crafted entry by entry (Python's tarfile writes whatever it is told, as an attacker would). */
function craft(entries: Entry[]): Blob {
  const out = join(scratch, `t-${Math.random().toString(36).slice(2)}.tar`);
  const py = `
import io, json, sys, tarfile
spec = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as t:
    for e in spec:
        i = tarfile.TarInfo(e['name']); i.mode = 0o755
        kind = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE, 'fifo': tarfile.FIFOTYPE, 'chr': tarfile.CHRTYPE}[e['type']]
        i.type = kind
        if 'target' in e: i.linkname = e['target']
        data = e.get('data', '').encode()
        if kind == tarfile.REGTYPE: i.size = len(data)
        if kind == tarfile.CHRTYPE: i.devmajor, i.devminor = 1, 3
        t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
`;
  execFileSync('python3', ['-c', py, out, JSON.stringify(entries)]);
  return new Blob([readFileSync(out)]);
}

const PY_APP: Entry = { name: 'app.py', type: 'file', data: 'print("hi")\n' };

/** Everything an attack could have leaked into: answers, the log, every image root. */
function assertNoLeak(what: unknown): void {
  assert.ok(!JSON.stringify(what).includes(CANARY), 'the canary is not in the answer');
  assert.ok(!d.log().includes(CANARY) && !readFileSync(join(d.home, 'daemon.log'), 'utf8').includes(CANARY), 'the canary is not in the daemon log');
  for (const root of imageRoots()) assert.ok(!root.includes(CANARY), 'the canary is not in any image root');
}

/** Every image root of the daemon, decompressed (zstd), as text. */
function imageRoots(): string[] {
  const dir = join(d.home, 'images');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((id) => execFileSync('zstd', ['-dc', join(dir, id, 'root.cpio')], { maxBuffer: 1 << 30 }).toString('latin1'));
}

async function refused(name: string, blob: Blob, status: number, code: string | RegExp, message: RegExp, query = ''): Promise<any> {
  const r = await d.upload(name, blob, query);
  assert.equal(r.status, status, JSON.stringify(r.json));
  if (typeof code === 'string') assert.equal(r.json.code, code, JSON.stringify(r.json));
  else assert.match(r.json.code, code);
  assert.match(r.json.message, message);
  assert.ok(r.json.hint === undefined || typeof r.json.hint === 'string');
  assertNoLeak(r.json);
  assert.equal((await d.api('GET', '/images')).json.some((i: { Id: string; Name?: string }) => JSON.stringify(i).includes(name)), false, 'nothing stored');
  return r.json;
}

test('tar entries with "..", absolute paths, devices and fifos are refused before anything is written', async () => {
  const name = `${TOKEN}-dotdot`;
  await refused('dotdot', craft([PY_APP, { name: `../../${name}`, type: 'file', data: CANARY }]), 400, 'UNIK_ERR_BAD_TARBALL', /outside its root/, '?lang=python');
  await refused('absolute', craft([PY_APP, { name: join(OUTDIR, 'abs'), type: 'file', data: CANARY }]), 400, 'UNIK_ERR_BAD_TARBALL', /outside its root/, '?lang=python');
  assert.equal(existsSync(join(OUTDIR, 'abs')), false);
  assert.equal(execFileSync('find', [d.home, scratch, '-name', name]).toString(), '', 'the ".." entry was written nowhere');
  await refused('fifo', craft([PY_APP, { name: 'pipe', type: 'fifo' }]), 400, 'UNIK_ERR_BAD_TARBALL', /FIFO/, '?lang=python');
  await refused('device', craft([PY_APP, { name: 'null', type: 'chr' }]), 400, 'UNIK_ERR_BAD_TARBALL', /CharacterDevice/, '?lang=python');
});

test('symlinks to a host secret, or a symlinked directory leading out, are refused (python app)', async () => {
  await refused('abslink', craft([PY_APP, { name: 'secret.txt', type: 'symlink', target: SECRET }]), 400, 'UNIK_ERR_BAD_TARBALL', /symlink to an absolute path/, '?lang=python');
  await refused('rellink', craft([PY_APP, { name: 'sub/secret.txt', type: 'symlink', target: '../../../../../../../../..' + SECRET }]), 400, 'UNIK_ERR_BAD_TARBALL', /outside its root/, '?lang=python');
  await refused('dirlink', craft([PY_APP, { name: 'lib', type: 'symlink', target: '../../../../../../../../..' + scratch }]), 400, 'UNIK_ERR_BAD_TARBALL', /outside its root/, '?lang=python');
  // `x/..` is judged on the text alone only up to the first name: x -> . makes x/.. climb out
  await refused('dotlink', craft([PY_APP, { name: 'x', type: 'symlink', target: '.' }, { name: 'y', type: 'symlink', target: 'x/../secret' }]), 400, 'UNIK_ERR_BAD_TARBALL', /after a name/, '?lang=python');
});

test('a symlink that a later entry writes through is refused, and nothing lands outside', async () => {
  await refused('through', craft([PY_APP, { name: 'link', type: 'symlink', target: OUTDIR }, { name: 'link/evil', type: 'file', data: CANARY }]), 400, 'UNIK_ERR_BAD_TARBALL', /symlink/, '?lang=python');
  await refused('through2', craft([PY_APP, { name: 'd', type: 'dir' }, { name: 'd/link', type: 'symlink', target: '../../../../../../../../..' + OUTDIR }, { name: 'd/link/evil', type: 'file', data: CANARY }]), 400, 'UNIK_ERR_BAD_TARBALL', /symlink|outside/, '?lang=python');
  assert.deepEqual(readdirSync(OUTDIR), []);
});

test('hard links to a host file are refused', async () => {
  await refused('hardabs', craft([PY_APP, { name: 'h', type: 'hardlink', target: SECRET }]), 400, 'UNIK_ERR_BAD_TARBALL', /hard link to an absolute path|outside its root/, '?lang=python');
  await refused('hardrel', craft([PY_APP, { name: 'h', type: 'hardlink', target: '../../../../../../../../..' + SECRET }]), 400, 'UNIK_ERR_BAD_TARBALL', /outside its root/, '?lang=python');
});

test('unik.yaml files: and elf entry:/libraries: cannot name host files through ".." or links', async () => {
  const yaml = (y: string) => craft([PY_APP, { name: 'unik.yaml', type: 'file', data: y }]);
  await refused('files1', yaml(`files: [{from: /usr/..${SECRET}, to: /app/s}]\n`), 400, 'UNIK_ERR_FILE_NOT_ALLOWED', /outside the host directories images may take files from/, '?lang=python');
  await refused('files2', yaml(`files: [{from: ${SECRET}, to: /app/s}]\n`), 400, 'UNIK_ERR_FILE_NOT_ALLOWED', /outside the host directories images may take files from/, '?lang=python');
  await refused('files3', yaml(`files: [{from: ../../../../../../../..${SECRET}, to: /app/s}]\n`), 400, 'UNIK_ERR_PATH_OUTSIDE_UPLOAD', /leaves the app directory/, '?lang=python');
  const elf = (y: string) => craft([{ name: 'unik.yaml', type: 'file', data: `language: elf\n${y}` }]);
  await refused('entry1', elf(`entry: /usr/..${SECRET}\n`), 400, 'UNIK_ERR_FILE_NOT_ALLOWED', /outside the host directories programs may come from/);
  await refused('entry2', elf(`entry: /usr/bin/../../..${SECRET}\n`), 400, 'UNIK_ERR_FILE_NOT_ALLOWED', /outside the host directories programs may come from/);
  await refused('libs1', elf(`entry: /usr/bin/webfsd\nlibraries: [/usr/..${SECRET}]\n`), 400, 'UNIK_ERR_LIBRARY_NOT_ALLOWED', /not a file under the daemon host's system directories/);
  await refused('libs2', elf(`entry: /usr/bin/webfsd\nlibraries: [../../../../../../../..${SECRET}]\n`), 400, 'UNIK_ERR_BAD_APP_MANIFEST', /file name the loader finds/);
});

test('an upload that is fine, with a link inside it and a system file, still builds; its root holds no canary', async () => {
  const blob = craft([
    PY_APP,
    { name: 'lib', type: 'dir' },
    { name: 'lib/helper.py', type: 'file', data: 'MARK = "inside_mark_7731"\n' },
    { name: 'helper.py', type: 'symlink', target: 'lib/helper.py' },
    { name: 'unik.yaml', type: 'file', data: 'files: [{from: /usr/bin/env, to: /app/env}]\n' },
  ]);
  const r = await d.upload('fine', blob, '?lang=python');
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const roots = imageRoots();
  assert.ok(roots.some((t) => t.includes('inside_mark_7731')), 'the search would find a string that is in the root');
  assertNoLeak(r.json);
  await d.api('DELETE', '/images/fine');
});

/** A C app whose Makefile runs `recipe` first; the build fails at the end so its output comes back in the 422. */
function makeApp(recipe: string[], extra: Entry[] = []): Blob {
  const mk = ['all:', ...recipe.map((l) => `\t-${l}`), '\t@echo END-OF-ATTACK', '\tfalse', ''].join('\n');
  return craft([{ name: 'Makefile', type: 'file', data: mk }, { name: 'app.c', type: 'file', data: 'int main(void) { return 0; }\n' }, ...extra]);
}

test('a Makefile cannot write to /tmp or the daemon home, read state.db or the secret, or reach the daemon', async () => {
  const srv = await countingServer();
  const port = srv.port;
  const inTmp = join('/tmp', `${TOKEN}-make`);
  const inHome = join(d.home, `${TOKEN}-make`);
  try {
    const r = await d.upload(
      'makeattack',
      makeApp([
        // its /tmp is a private one: the write may succeed there, never on the host
        `@echo pwned > ${inTmp}; test -e ${inTmp} && echo private-tmp`,
        `@echo pwned > ${inHome} && echo WROTE-HOME || echo no-home`,
        `@cat ${join(d.home, 'state.db')} > /dev/null && echo READ-DB || echo no-db`,
        `@cat ${SECRET} && echo READ-SECRET || echo no-secret`,
        `@bash -c 'echo hi > /dev/tcp/127.0.0.1/${d.port}' && echo REACHED-DAEMON || echo no-daemon`,
        `@bash -c 'echo hi > /dev/tcp/127.0.0.1/${port}' && echo REACHED-HOST || echo no-host`,
        `@id -u`,
      ]),
      '?lang=c',
    );
    assert.equal(r.status, 422, JSON.stringify(r.json));
    assert.equal(r.json.code, 'UNIK_ERR_C_COMPILE');
    const out: string = r.json.message;
    assert.match(out, /END-OF-ATTACK/, 'the recipe ran to its end');
    for (const ok of ['no-home', 'no-db', 'no-secret', 'no-daemon', 'no-host']) assert.match(out, new RegExp(ok));
    assert.doesNotMatch(out, /WROTE|READ-|REACHED/);
    assert.doesNotMatch(out, /^0$/m, 'it did not run as root');
    assert.equal(existsSync(inTmp), false);
    assert.equal(existsSync(inHome), false);
    assert.equal(srv.connections(), 0);
    assertNoLeak(r.json);
  } finally {
    srv.close();
  }
});

test('a C file that #includes the secret fails without showing it', async () => {
  // unconfined, gcc would read it and quote the canary ("unknown type name 'canary_…'")
  const r = await d.upload('include', craft([{ name: 'app.c', type: 'file', data: `#include "${SECRET}"\nint main(void) { return 0; }\n` }]), '?lang=c');
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_C_COMPILE');
  assert.match(r.json.message, /No such file or directory/);
  assertNoLeak(r.json);
});

test(`a Makefile that runs past UNIK_BUILD_TIMEOUT (${TIMEOUT_S} s) is stopped, with all it started`, async () => {
  const marker = `${300 + Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1000)}`;
  const started = Date.now();
  const r = await d.upload('sleeper', makeApp([`sleep ${marker} & sleep ${marker}`]), '?lang=c');
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_BUILD_TIMEOUT');
  assert.match(r.json.message, new RegExp(`longer than its limit of ${TIMEOUT_S} s`));
  assert.match(r.json.hint, /UNIK_BUILD_TIMEOUT/);
  assert.ok(Date.now() - started < (TIMEOUT_S + 20) * 1000);
  await new Promise((res) => setTimeout(res, 500));
  assert.deepEqual(execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((l) => l.includes(`sleep ${marker}`)), []);
});

test(`a build that allocates past UNIK_BUILD_MEMORY_MB (${MEMORY_MB} MB) is killed with a clear error`, async () => {
  const r = await d.upload('hog', makeApp([`python3 -c "x = bytearray(${MEMORY_MB * 4} * 1024 * 1024); print('ALLOCATED', len(x))"`]), '?lang=c');
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_BUILD_OUT_OF_MEMORY', JSON.stringify(r.json));
  assert.match(r.json.message, new RegExp(`memory limit of ${MEMORY_MB} MB`));
  assert.match(r.json.hint, /UNIK_BUILD_MEMORY_MB/);
});
