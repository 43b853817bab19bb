// The nodejs language, for real: the CLI pushes examples/node-http (language detected from
// package.json), runs it under QEMU with env and a port forward, and talks to it over HTTP.
// Bad uploads (no entry point, a native addon needing a missing library) are refused up front.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, refused, tarOf } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
  },
  teardown: () => rmSync(scratch, { recursive: true, force: true }),
});
const scratch = mkdtempSync(join(tmpdir(), 'unik-nodejs-'));
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

test('push detects nodejs from package.json and builds node + the app into an image', async () => {
  const r = await d.cli(['push', 'node-http', join(ROOT, 'examples/node-http')]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /node-http/);
  const images = await d.api('GET', '/images');
  assert.equal(images.status, 200);
  const img = images.json.find((i: { Name: string }) => i.Name === 'node-http');
  assert.ok(img, JSON.stringify(images.json));
  assert.equal(img.Language, 'nodejs');
  assert.equal(img.RunSpec.Compiler, 'linux-nodejs-qemu');
  // the daemon's Node (~99 MB) and its libraries dominate, zstd-compressed; no npm, no shell
  assert.ok(img.SizeBytes > 20_000_000 && img.SizeBytes < 150_000_000, `size ${img.SizeBytes}`);
  const list = await d.cli(['images']);
  assert.match(list.stdout, /node-http\s+\S+\s+nodejs/);
});

test('run with env and a port forward: pong and the env value over HTTP, start line in logs', async () => {
  const r = await d.cli(['run', 'node-http', '--name', 'n', '-p', `${port}:8080`, '-e', 'KEY=VAL']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // booting a 100 MB initramfs under TCG emulation takes a while
  assert.equal(await httpUntil(app('/ping_test'), 90_000), 'pong');
  assert.equal(await httpUntil(app('/env_test'), 10_000), 'VAL');
  const missing = await fetch(app('/mount_test'));
  assert.equal(missing.status, 404, 'no volume: /data/data.txt is missing');
  const logs = await d.cli(['logs', 'n']);
  assert.match(logs.stdout, /node-http listening on :8080/);
});

test('stop: SIGTERM reaches node through the guest init and the port closes', async () => {
  const stop = await d.cli(['stop', 'n']);
  assert.equal(stop.code, 0, stop.stderr);
  const inst = await d.api('GET', '/instances/n');
  assert.equal(inst.json.State, 'stopped');
  assert.equal(inst.json.ExitCode, 143);
  assert.ok(await refused(app('/ping_test')));
  assert.equal((await d.cli(['rm', '-f', 'n'])).code, 0);
});

test('a package.json without main, start script or index.js: 400 NO_ENTRY_POINT naming what was looked for', async () => {
  const dir = join(scratch, 'noentry');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'noentry', version: '1.0.0', scripts: { test: 'echo none' } }));
  writeFileSync(join(dir, 'lib.js'), 'module.exports = 1;\n');
  const before = (await d.api('GET', '/images')).json.length;
  const r = await d.upload('noentry', tarOf(dir));
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_NO_ENTRY_POINT');
  assert.match(r.json.message, /"main"/);
  assert.match(r.json.message, /index\.js/);
  assert.match(r.json.hint, /main|entry/);
  assert.equal((await d.api('GET', '/images')).json.length, before, 'nothing stored');
});

test('a native addon that needs a library the host lacks: 400 naming the library', async () => {
  const dir = join(scratch, 'addon');
  const libDir = join(scratch, 'libs');
  mkdirSync(join(dir, 'build'), { recursive: true });
  mkdirSync(libDir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'addon', version: '1.0.0', main: 'index.js' }));
  writeFileSync(join(dir, 'index.js'), "require('./build/x.node');\n");
  // an addon linked against libunikgone.so, which is then deleted: ldd says "not found"
  writeFileSync(join(libDir, 'gone.c'), 'int unik_gone(void) { return 1; }\n');
  writeFileSync(join(libDir, 'x.c'), 'int unik_gone(void);\nint unik_addon(void) { return unik_gone(); }\n');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', join(libDir, 'libunikgone.so'), join(libDir, 'gone.c')]);
  execFileSync('gcc', ['-shared', '-fPIC', '-o', join(dir, 'build', 'x.node'), join(libDir, 'x.c'), `-L${libDir}`, '-lunikgone']);
  rmSync(join(libDir, 'libunikgone.so'));
  const r = await d.upload('addon', tarOf(dir));
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_LIBRARY_NOT_FOUND');
  assert.match(r.json.message, /libunikgone\.so/);
  assert.match(r.json.message, /x\.node/);
  assert.equal((await d.api('GET', '/images')).json.some((i: { Name: string }) => i.Name === 'addon'), false);
});
