// Node.js for arm64 on this amd64 host: the runtime is Debian's arm64 nodejs package (fetched
// into the daemon's cache, never installed), and the image runs for real under
// qemu-system-aarch64 -M virt (TCG here, so slow: generous deadlines, times reported).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

const d = suiteDaemon();
const bootedFrom = (id: string): string[] => JSON.parse(readFileSync(join(d.home, 'instances', id, 'qemu.argv'), 'utf8')) as string[];
/** the arm64 kernel (base, arm64, net) is normally cached; building it takes 5-6 min on 2 cores */
const KERNEL_BUILD_MS = 15 * 60_000;
/** Node starting under TCG on a busy 2-core host */
const TCG_ANSWER_MS = 300_000;

/** Runs an instance and times its first HTTP answer; returns the seconds and the QEMU argv. */
async function firstAnswer(name: string, extra: string[]): Promise<{ seconds: number; argv: string[]; port: number }> {
  const port = await freePort();
  const started = Date.now();
  const run = await d.cli(['run', 'node-arm', '--name', name, '-p', `${port}:8080`, ...extra]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, TCG_ANSWER_MS), 'pong');
  const seconds = (Date.now() - started) / 1000;
  return { seconds, argv: bootedFrom((await d.api('GET', `/instances/${name}`)).json.Id), port };
}

test('Node.js for arm64: Debian\'s arm64 nodejs, an HTTP answer from the guest under qemu-system-aarch64 -M virt', { timeout: KERNEL_BUILD_MS + 3 * TCG_ANSWER_MS + 300_000 }, async (t) => {
  const pushStarted = Date.now();
  const push = await d.cli(['push', 'node-arm', join(ROOT, 'examples/node-http'), '--arch', 'arm64'], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  t.diagnostic(`push (Debian's nodejs fetched into a fresh cache, image built) took ${((Date.now() - pushStarted) / 1000).toFixed(1)} s`);
  const runtime = /runtime: Debian's nodejs (\d+\.\d+\.\d+) for arm64[^\n]*/.exec(push.stdout + push.stderr);
  assert.ok(runtime, `the build names its runtime:\n${push.stdout}${push.stderr}`);
  t.diagnostic(runtime[0]);
  assert.doesNotMatch(push.stdout + push.stderr, /configuring arm64 kernel/, 'the cached arm64 kernel is used');

  const img = (await d.api('GET', '/images/node-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  assert.equal(img.Language, 'nodejs');
  t.diagnostic(`image size: ${img.SizeBytes} bytes (${(img.SizeBytes / 1e6).toFixed(1)} MB)`);
  const manifest = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
  assert.equal(manifest.arch, 'aarch64');
  assert.deepEqual(manifest.kernel.fragments, ['base', 'arm64', 'net']);
  assert.match((await d.cli(['images'])).stdout, /node-arm\s+\S+\s+nodejs\s+arm64\s+qemu/);

  // the boot snapshot is made in the background after the build; the first run restores it
  const snapshot = join(d.home, 'images', img.Id, 'snapshots');
  const waited = Date.now();
  await waitFor('the boot snapshot', async () => (existsSync(snapshot) && readdirSync(snapshot).some((s) => existsSync(join(snapshot, s, 'state'))) ? true : undefined), TCG_ANSWER_MS);
  t.diagnostic(`boot snapshot ready ${((Date.now() - waited) / 1000).toFixed(1)} s after the push returned`);

  const warm = await firstAnswer('node-arm-1', ['-e', 'KEY=arm64 node']);
  t.diagnostic(`time to first HTTP answer (restored from the boot snapshot; node starts in the guest): ${warm.seconds.toFixed(1)} s`);
  assert.match(warm.argv[0]!, /qemu-system-aarch64$/);
  assert.deepEqual(warm.argv.slice(warm.argv.indexOf('-M'), warm.argv.indexOf('-M') + 2), ['-M', 'virt']);
  assert.ok(warm.argv.includes('-incoming'), 'restored from the boot snapshot');
  assert.equal(await httpUntil(`http://127.0.0.1:${warm.port}/env_test`), 'arm64 node');
  assert.match((await d.cli(['logs', 'node-arm-1'])).stdout, /node-http listening on :8080/);
  assert.equal((await d.cli(['stop', 'node-arm-1'])).code, 0);
  assert.equal((await d.api('GET', '/instances/node-arm-1')).json.ExitCode, 143, 'an orderly stop: SIGTERM to node');
  assert.equal((await d.cli(['rm', 'node-arm-1'])).code, 0);

  // an environment too big for the control line goes in the initrd: a cold boot, kernel and all
  const cold = await firstAnswer('node-arm-2', ['-e', `BIG=${'x'.repeat(70_000)}`]);
  t.diagnostic(`time to first HTTP answer (cold boot: the arm64 kernel boots, then node): ${cold.seconds.toFixed(1)} s`);
  assert.match(cold.argv[0]!, /qemu-system-aarch64$/);
  assert.ok(!cold.argv.includes('-incoming'), 'a cold boot');
  assert.equal((await d.cli(['rm', '-f', 'node-arm-2'])).code, 0);
});
