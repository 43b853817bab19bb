// Roots on a read-only erofs disk under a tmpfs overlay, and what servers need of the guest:
// a probe (test/fixtures/rootdisk-probe, unik.yaml rootDisk: true, user, stopSignal) reports
// its uid and groups, writable /tmp and /dev/shm, SysV shm, its open-file limit and a second
// process, on a boot-snapshot restore and on a cold boot; it prints the signal a stop sent it.
// Then examples/python-http on a root disk answers too; export and hub push refuse such images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-rootdisk-'));
const d = suiteDaemon({ teardown: () => rmSync(scratch, { recursive: true, force: true }) });
const TCG_BOOT_MS = 180_000;

function imageFiles(id: string): { dir: string; manifest: any } {
  const dir = join(d.home, 'images', id);
  return { dir, manifest: JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) };
}

function instanceDir(name: string): Promise<string> {
  return d.api('GET', `/instances/${name}`).then((r) => join(d.home, 'instances', r.json.Id));
}

/** The probe's report, as key=value pairs. */
function report(body: string): Record<string, string> {
  return Object.fromEntries(body.trim().split(' ').map((kv) => kv.split('=') as [string, string]));
}

function checkReport(r: Record<string, string>): void {
  assert.equal(r.uid, '1000', 'runs as the image user');
  assert.equal(r.gid, '1000');
  assert.equal(r.groups, '27,100', 'with its supplementary groups');
  assert.equal(r.tmp, 'ok', '/tmp is writable');
  assert.equal(r.shm, 'ok', '/dev/shm is writable');
  assert.equal(r.sysvshm, 'ok', 'SysV shared memory works');
  assert.equal(r.nofile, '65536', 'RLIMIT_NOFILE raised');
  assert.equal(r.varrun, '/run', '/var/run leads to /run');
  assert.equal(r.root, 'overlay', 'the root is the overlay on the disk');
  assert.equal(r.child, 'ok', 'a second process runs');
}

test('a probe on a root disk: user, groups, writable dirs, SysV shm; snapshot restore and cold boot; the stop signal', async () => {
  const push = await d.cli(['push', 'probe', join(ROOT, 'test/fixtures/rootdisk-probe')]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const img = (await d.api('GET', '/images/probe')).json;
  const { dir, manifest } = imageFiles(img.Id);
  assert.deepEqual(manifest.user, { uid: 1000, gid: 1000, groups: [27, 100] });
  assert.equal(manifest.stopSignal, 'SIGQUIT');
  assert.equal(manifest.rootDisk.fsType, 'erofs');
  assert.equal(manifest.rootDisk.file, 'root.erofs');
  assert.ok(existsSync(join(dir, 'root.erofs')));
  assert.ok(manifest.kernel.fragments.includes('rootdisk'));
  assert.ok(manifest.root.sizeBytes < 100_000, `the initramfs holds only the init (${manifest.root.sizeBytes} bytes)`);

  // the boot snapshot is made with the root disk attached, and a run restores it
  const snapshots = join(dir, 'snapshots');
  await waitFor('the boot snapshot', async () => (existsSync(snapshots) && readdirSync(snapshots).some((s) => existsSync(join(snapshots, s, 'state'))) ? true : undefined), TCG_BOOT_MS);
  const port = await freePort();
  assert.equal((await d.cli(['run', 'probe', '--name', 'warm', '-p', `${port}:8080`])).code, 0);
  checkReport(report(await httpUntil(`http://127.0.0.1:${port}/`, TCG_BOOT_MS)));
  assert.ok(!existsSync(join(await instanceDir('warm'), 'initrd')), 'restored from the snapshot, not booted cold');

  // an orderly stop sends the image's stop signal (SIGQUIT), which the probe reports
  assert.equal((await d.cli(['stop', 'warm'])).code, 0);
  await waitFor('the probe to report its signal', async () => ((await d.cli(['logs', 'warm'])).stdout.includes('probe stopped by signal 3') ? true : undefined), 30_000);
  assert.equal((await d.cli(['rm', '-f', 'warm'])).code, 0);

  // an environment over the control channel's 64 KB boots cold, with the config in the initrd
  const cold = await freePort();
  const r = await d.api('POST', '/instances/run', { ImageName: 'probe', InstanceName: 'cold', Env: { BIG: 'x'.repeat(70_000) }, Ports: [{ HostPort: cold, GuestPort: 8080 }] });
  assert.equal(r.status, 201, r.text);
  checkReport(report(await httpUntil(`http://127.0.0.1:${cold}/`, TCG_BOOT_MS)));
  assert.ok(existsSync(join(await instanceDir('cold'), 'initrd')), 'booted cold');
  assert.equal((await d.cli(['stop', 'cold'])).code, 0);
  await waitFor('the probe to report its signal', async () => ((await d.cli(['logs', 'cold'])).stdout.includes('probe stopped by signal 3') ? true : undefined), 30_000);
  assert.equal((await d.cli(['rm', '-f', 'cold'])).code, 0);

  // what cannot carry a root disk yet says so
  const exp = await d.api('POST', '/images/probe/export?format=raw');
  assert.equal(exp.status, 409, exp.text);
  assert.match(exp.text, /ROOT_DISK_NOT_EXPORTABLE/);
  const hub = await d.api('POST', '/images/push/probe?ref=127.0.0.1:1/probe:latest&insecure=true');
  assert.equal(hub.status, 409, hub.text);
  assert.match(hub.text, /ROOT_DISK_NOT_PUSHABLE/);
});

test('examples/python-http on a root disk answers', async () => {
  const app = join(scratch, 'python-http');
  cpSync(join(ROOT, 'examples/python-http'), app, { recursive: true });
  writeFileSync(join(app, 'unik.yaml'), 'rootDisk: true\n');
  const push = await d.cli(['push', 'py-disk', app]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const { manifest } = imageFiles((await d.api('GET', '/images/py-disk')).json.Id);
  assert.equal(manifest.rootDisk?.fsType, 'erofs');
  const port = await freePort();
  assert.equal((await d.cli(['run', 'py-disk', '--name', 'py', '-p', `${port}:8080`])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, TCG_BOOT_MS), 'pong');
  assert.equal((await d.cli(['rm', '-f', 'py'])).code, 0);
});
