// Volumes, for real: disk images made without root, attached to unikernels as virtio disks and
// mounted by the guest init; data written by the app survives its instance and the daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
    mkdirSync(join(dataDir, 'sub'), { recursive: true });
    writeFileSync(join(dataDir, 'data.txt'), 'test_data');
    writeFileSync(join(dataDir, 'sub', 'nested.txt'), 'nested');
    const push = await d.cli(['push', 'go-vol', join(ROOT, 'examples/go-http'), '--mountpoint', '/data']);
    assert.equal(push.code, 0, push.stderr + push.stdout);
  },
  teardown: () => rmSync(scratch, { recursive: true, force: true }),
});
const scratch = mkdtempSync(join(tmpdir(), 'unik-vol-'));
const dataDir = join(scratch, 'data');
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

const vol = async (name: string) => (await d.api('GET', `/volumes/${name}`)).json;

test('an image built with --mountpoint declares it, and gets a kernel with block devices', async () => {
  const img = (await d.api('GET', '/images/go-vol')).json;
  assert.deepEqual(img.RunSpec.DeviceMappings.map((m: { MountPoint: string }) => m.MountPoint), ['/data']);
  const plain = await d.cli(['push', 'go-plain', join(ROOT, 'examples/go-http')]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.notEqual((await d.api('GET', '/images/go-plain')).json.KernelConfigHash, img.KernelConfigHash, 'no block layer without mount points');
});

test('a volume made from a directory is mounted at /data and /mount_test returns its content', async () => {
  const cv = await d.cli(['create-volume', 'data1', '--data', dataDir]);
  assert.equal(cv.code, 0, cv.stderr + cv.stdout);
  const v = await vol('data1');
  assert.equal(v.Type, 'ext4');
  assert.equal(v.Attachment, '');
  assert.equal(v.Infrastructure, 'QEMU');
  const lv = await d.cli(['volumes']);
  assert.match(lv.stdout, /data1/);
  const run = await d.cli(['run', 'go-vol', '--name', 'one', '-p', `${port}:8080`, '--vol', 'data1:/data']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.equal(await httpUntil(app('/mount_test')), 'test_data');
  assert.equal(await httpUntil(app('/read_test?name=data.txt')), 'test_data');
  const attached = await vol('data1');
  assert.equal(attached.AttachedInstanceName, 'one');
  assert.equal(attached.MountPoint, '/data');
});

test('what the app writes survives its instance: stop, delete, attach to a new instance, read it back', async () => {
  assert.equal(await httpUntil(app('/write_test?name=kept.txt&data=written-by-one')), 'written');
  assert.equal((await d.cli(['stop', 'one'])).code, 0);
  assert.equal((await d.cli(['rm', 'one'])).code, 0);
  assert.equal((await vol('data1')).Attachment, '', 'deleting the instance released the volume');
  const run = await d.cli(['run', 'go-vol', '--name', 'two', '-p', `${port}:8080`, '--vol', 'data1:/data']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.equal(await httpUntil(app('/read_test?name=kept.txt')), 'written-by-one');
});

test('attach and detach while stopped; refused while running', async () => {
  let r = await d.api('POST', '/volumes/data1/detach');
  assert.equal(r.status, 409, 'no detach from a running instance (no hot-plug)');
  assert.match(r.json.hint, /stop it first/);
  assert.equal((await d.cli(['stop', 'two'])).code, 0);
  r = await d.api('POST', '/volumes/data1/detach');
  assert.equal(r.status, 202);
  assert.equal(r.text, 'data1');
  const start = await d.api('POST', '/instances/two/start');
  assert.equal(start.status, 409, 'a declared mount point without a volume');
  assert.match(start.json.message, /no volume at \/data/);
  const av = await d.cli(['attach-volume', 'data1', 'two', '/data']);
  assert.equal(av.code, 0, av.stderr);
  assert.equal((await d.cli(['start', 'two'])).code, 0);
  assert.equal(await httpUntil(app('/read_test?name=kept.txt')), 'written-by-one');
});

test('volumes and their data survive a daemon restart', async () => {
  await d.stop();
  await d.start();
  const v = await vol('data1');
  assert.equal(v.AttachedInstanceName, 'two');
  assert.equal(await httpUntil(app('/read_test?name=kept.txt')), 'written-by-one');
  assert.equal((await d.cli(['stop', 'two'])).code, 0);
  assert.equal((await d.cli(['start', 'two'])).code, 0);
  assert.equal(await httpUntil(app('/read_test?name=sub/../kept.txt')), 'written-by-one');
});

test('FAT, empty and raw volumes mount too', async () => {
  const p2 = await freePort();
  let r = await d.cli(['create-volume', 'fat1', '--data', dataDir, '--type', 'fat']);
  assert.equal(r.code, 0, r.stderr);
  r = await d.cli(['run', 'go-vol', '--name', 'fat', '-p', `${p2}:8080`, '--vol', 'fat1:/data']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/mount_test`), 'test_data');
  assert.equal((await d.cli(['rm', '-f', 'fat'])).code, 0);

  r = await d.cli(['create-volume', 'empty1', '64']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await vol('empty1')).SizeMb, 64);
  r = await d.cli(['run', 'go-vol', '--name', 'empty', '-p', `${p2}:8080`, '--vol', 'empty1:/data']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/write_test?name=x&data=y`), 'written');
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/read_test?name=x`), 'y');
  assert.equal((await d.cli(['rm', '-f', 'empty'])).code, 0);

  const image = join(scratch, 'raw.img');
  execFileSync('truncate', ['-s', '32M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', dataDir, image]);
  r = await d.cli(['create-volume', 'raw1', '--data', image, '--raw']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await vol('raw1')).Type, 'ext4');
  r = await d.cli(['run', 'go-vol', '--name', 'raw', '-p', `${p2}:8080`, '--vol', 'raw1:/data']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/mount_test`), 'test_data');
  assert.equal((await d.cli(['rm', '-f', 'raw'])).code, 0);
});

test('every example app reads its volume: /mount_test of c-http, python-http, node-http, java-http', async () => {
  for (const example of ['c-http', 'python-http', 'node-http', 'java-http']) {
    const push = await d.cli(['push', `${example}-vol`, join(ROOT, 'examples', example), '--mountpoint', '/data']);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    assert.equal((await d.cli(['create-volume', `${example}-data`, '--data', dataDir])).code, 0);
    const p2 = await freePort();
    const run = await d.cli(['run', `${example}-vol`, '--name', `${example}-m`, '-p', `${p2}:8080`, '--vol', `${example}-data:/data`]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.equal(await httpUntil(`http://127.0.0.1:${p2}/mount_test`, 120_000), 'test_data', example);
    assert.equal((await d.cli(['rm', '-f', `${example}-m`])).code, 0);
    assert.equal((await d.cli(['rmu', `${example}-vol`])).code, 0);
  }
});

test('bad input: clear errors, nothing changed', async () => {
  const snapshot = async () => JSON.stringify((await d.api('GET', '/volumes')).json);
  const before = await snapshot();
  let r = await d.api('POST', '/volumes/data1/attach/two?mount=/data');
  assert.equal(r.status, 409, 'already attached');
  r = await d.api('DELETE', '/volumes/data1');
  assert.equal(r.status, 409, 'attached, no force');
  assert.match(r.json.hint, /-f/);
  r = await d.api('DELETE', '/volumes/data1?force=true');
  assert.equal(r.status, 409, 'in use by a running instance, even forced');
  r = await d.api('POST', '/volumes/zero?size=0');
  assert.equal(r.status, 400);
  r = await d.api('POST', '/volumes/huge?size=1000000000');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /does not fit/);
  r = await d.api('POST', '/volumes/nosize');
  assert.equal(r.status, 400);
  r = await d.api('POST', '/volumes/data1?size=10');
  assert.equal(r.status, 409, 'name clash');
  r = await d.api('POST', '/volumes/badtype?size=10&type=ntfs');
  assert.equal(r.status, 400);

  const evil = join(scratch, 'evil.tar');
  execFileSync('tar', ['-cf', evil, '-C', join(dataDir, 'sub'), '--absolute-names', '../data.txt']);
  const form = new FormData();
  form.append('tarfile', new Blob([readFileSync(evil)]), 'evil.tar');
  const res = await fetch(`${d.url}/volumes/evil`, { method: 'POST', body: form });
  assert.equal(res.status, 400);
  assert.match(((await res.json()) as { message: string }).message, /outside its root/);

  const junk = new FormData();
  junk.append('tarfile', new Blob([Buffer.alloc(4 * 1024 * 1024, 7)]), 'disk.img');
  const raw = await fetch(`${d.url}/volumes/rawjunk?raw=true`, { method: 'POST', body: junk });
  assert.equal(raw.status, 400, 'a raw upload that holds no filesystem');
  assert.match(((await raw.json()) as { message: string }).message, /no filesystem unik recognises/);

  const p3 = await freePort();
  r = await d.api('POST', '/instances/run', { ImageName: 'go-vol', InstanceName: 'novol', Ports: [`${p3}:8080`] });
  assert.equal(r.status, 400);
  assert.match(r.json.message, /declares mount point\(s\) \/data/);
  r = await d.api('POST', '/instances/run', { ImageName: 'go-vol', InstanceName: 'novol', Mounts: { '/elsewhere': 'empty1' } });
  assert.equal(r.status, 400);
  assert.match(r.json.message, /no mount point \/elsewhere/);
  r = await d.api('POST', '/instances/run', { ImageName: 'go-vol', InstanceName: 'novol', Mounts: { '/data': 'nosuchvolume' } });
  assert.equal(r.status, 404);
  r = await d.api('POST', '/instances/run', { ImageName: 'go-vol', InstanceName: 'novol', Mounts: { '/data': 'data1' } });
  assert.equal(r.status, 409, 'a volume attached elsewhere');
  assert.equal(await snapshot(), before);
  assert.equal((await d.api('GET', '/instances/novol')).status, 404);
});

test('a volume whose disk file was deleted behind the daemon is reported, not a crash', async () => {
  const v = await vol('empty1');
  rmSync(join(d.home, 'volumes', v.Id, 'disk.img'));
  const listed = (await d.api('GET', '/volumes')).json.find((x: { Name: string }) => x.Name === 'empty1');
  assert.match(listed.Error, /missing/);
  const r = await d.api('POST', '/instances/run', { ImageName: 'go-vol', InstanceName: 'ghost', Mounts: { '/data': 'empty1' } });
  assert.equal(r.status, 409);
  assert.match(r.json.message, /missing/);
  assert.equal((await d.api('DELETE', '/volumes/empty1')).status, 204);
  assert.equal((await d.api('GET', '/volumes/empty1')).status, 404);
});
