// Python for arm64 on this amd64 host: the CLI builds examples/python-http with Debian's arm64
// python3.11 and standard library (fetched as packages, never installed), and the image runs for
// real under qemu-system-aarch64 -M virt (TCG here: slow, so the deadlines are generous).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil } from './harness.js';

const d = suiteDaemon();
const bootedFrom = (id: string): string[] => JSON.parse(readFileSync(join(d.home, 'instances', id, 'qemu.argv'), 'utf8')) as string[];
/** the arm64 kernel (base, arm64, net) is cached; the Debian packages may still be downloaded */
const PUSH_MS = 10 * 60_000;
/** TCG boots a kernel and unpacks a ~35 MB initramfs before python starts: minutes, not seconds */
const FIRST_ANSWER_MS = 6 * 60_000;

test('Python for arm64: Debian\'s arm64 python3.11 under -M virt answers HTTP; env, logs', { timeout: PUSH_MS + FIRST_ANSWER_MS + 120_000 }, async (t) => {
  const started = Date.now();
  const push = await d.cli(['push', 'py-arm', join(ROOT, 'examples/python-http'), '--arch', 'arm64'], { timeoutMs: PUSH_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  t.diagnostic(`push: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const out = push.stdout + push.stderr;
  assert.match(out, /runtime: Debian's python3\.11 \S+ for arm64/);
  assert.doesNotMatch(out, /building arm64 kernel/, 'the arm64 kernel comes from the cache');

  const img = (await d.api('GET', '/images/py-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  assert.equal(img.Language, 'python');
  t.diagnostic(`image size: ${img.SizeBytes} bytes (${(img.SizeBytes / 1e6).toFixed(1)} MB)`);
  const manifest = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
  assert.equal(manifest.arch, 'aarch64');
  assert.deepEqual(manifest.kernel.fragments, ['base', 'arm64', 'net']);

  // examples/python-http listens on $PORT, 8080 by default
  const port = await freePort();
  const runAt = Date.now();
  const run = await d.cli(['run', 'py-arm', '--name', 'pyarm', '-p', `${port}:8080`, '-e', 'KEY=arm64 python']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, FIRST_ANSWER_MS), 'pong');
  const firstAnswer = (Date.now() - runAt) / 1000;
  const id = (await d.api('GET', '/instances/pyarm')).json.Id;
  const argv = bootedFrom(id);
  t.diagnostic(`first HTTP answer ${firstAnswer.toFixed(1)} s after unik run (${argv.includes('-incoming') ? 'restored from the boot snapshot' : 'cold boot'})`);
  assert.match(argv[0]!, /qemu-system-aarch64$/);
  assert.deepEqual(argv.slice(argv.indexOf('-M'), argv.indexOf('-M') + 2), ['-M', 'virt']);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`, 60_000), 'arm64 python');
  const missing = await fetch(`http://127.0.0.1:${port}/no_such_route`);
  assert.equal(missing.status, 404);
  assert.match((await d.cli(['logs', 'pyarm'])).stdout, /python-http listening on :8080/);
  assert.equal((await d.cli(['rm', '-f', 'pyarm'])).code, 0);
});
