// Python for real: the CLI builds examples/python-http (detected by requirements.txt / *.py) into
// a unikernel holding Debian's python3.11 and its standard library, runs it under QEMU, and the
// test talks to it over HTTP. An app with no entry point is refused through the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
  },
});
const scratch = mkdtempSync(join(tmpdir(), 'unik-py-'));
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

test('push detects Python and builds examples/python-http', async () => {
  const r = await d.cli(['push', 'python-http', join(ROOT, 'examples/python-http')]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const images = await d.api('GET', '/images');
  const img = images.json.find((i: { Name: string }) => i.Name === 'python-http');
  assert.ok(img, JSON.stringify(images.json));
  assert.equal(img.Language, 'python');
  assert.equal(img.RunSpec.Compiler, 'linux-python-qemu');
  assert.ok(img.SizeBytes > 5_000_000 && img.SizeBytes < 200_000_000, `size ${img.SizeBytes}`);
});

test('run with env and a port forward: pong and the env value, start line in logs', async () => {
  const r = await d.cli(['run', 'python-http', '--name', 'py', '-p', `${port}:8080`, '-e', 'KEY=VAL']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await httpUntil(app('/ping_test'), 90_000), 'pong');
  assert.equal(await httpUntil(app('/env_test'), 30_000), 'VAL');
  const missing = await fetch(app('/mount_test'));
  assert.equal(missing.status, 404, 'no volume: /data/data.txt is missing');
  const logs = await d.cli(['logs', 'py']);
  assert.match(logs.stdout, /python-http listening on :8080/);
  assert.equal((await d.api('DELETE', '/instances/py?force=true')).status, 204);
});

test('a Python app with no entry point: 400 UNIK_ERR_NO_ENTRY_POINT naming what was looked for', async () => {
  const dir = join(scratch, 'noentry');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'requirements.txt'), '');
  writeFileSync(join(dir, 'helper.py'), 'def help():\n    return 1\n');
  const tgz = join(scratch, 'noentry.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', dir, '.']);
  const form = new FormData();
  form.append('tarfile', new Blob([readFileSync(tgz)]), 'app.tar.gz');
  const res = await fetch(`${d.url}/images/noentry/create`, { method: 'POST', body: form });
  const json = await res.json();
  assert.equal(res.status, 400, JSON.stringify(json));
  assert.equal(json.code, 'UNIK_ERR_NO_ENTRY_POINT');
  assert.match(json.message, /app\.py/);
  assert.match(json.hint, /entry:/);
  const images = await d.api('GET', '/images');
  assert.ok(!images.json.some((i: { Name: string }) => i.Name === 'noentry'));
});
