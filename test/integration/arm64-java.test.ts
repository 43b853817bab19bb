// Java for arm64 on this amd64 host: the host's jlink links the JRE from Debian's arm64 jmods,
// its libraries come from Debian's arm64 packages, and the JVM runs for real under
// qemu-system-aarch64 -M virt (TCG here: slow to start, so the deadlines are generous).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cachedKernel } from '../../src/base/linux/kernel.js';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

const d = suiteDaemon();
/** Is the kernel this push needs (base, arm64, net) in the shared kernel cache already? */
const arm64KernelCached = (): boolean => !!cachedKernel(process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'), ['base', 'arm64', 'net'], 'arm64');
const bootedFrom = (id: string): string[] => JSON.parse(readFileSync(join(d.home, 'instances', id, 'qemu.argv'), 'utf8')) as string[];
/** the arm64 kernel (base, arm64, net) is normally cached; building it takes 5-6 min on 2 cores */
const KERNEL_BUILD_MS = 15 * 60_000;
/** the first build downloads Debian's arm64 JDK (~140 MB) and links a JRE */
const PUSH_MS = 10 * 60_000;
/** a JVM started under TCG arm64 emulation */
const FIRST_ANSWER_MS = 5 * 60_000;
/** the port examples/java-http listens on when PORT is not set */
const APP_PORT = 8080;

test('Java for arm64: a JRE from Debian\'s arm64 jmods, booted under qemu-system-aarch64 -M virt, answers HTTP', { timeout: KERNEL_BUILD_MS + PUSH_MS + 2 * FIRST_ANSWER_MS }, async (t) => {
  // on a fresh machine this is the first test that needs the arm64 kernel: it builds it then
  const cachedBefore = arm64KernelCached();
  let started = Date.now();
  const push = await d.cli(['push', 'java-arm', join(ROOT, 'examples/java-http'), '--arch', 'arm64'], { timeoutMs: KERNEL_BUILD_MS + PUSH_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  t.diagnostic(`push (download, javac, jdeps, jlink, image) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (cachedBefore) assert.doesNotMatch(push.stdout + push.stderr, /(configuring|building) arm64 kernel/, 'the cached arm64 kernel is used');
  else t.diagnostic('the arm64 kernel (base, arm64, net) was not cached: this push built it');
  const img = (await d.api('GET', '/images/java-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  assert.equal(img.Language, 'java');
  // the build says which runtime it linked
  assert.match(push.stdout + push.stderr, /arm64 OpenJDK [0-9.]+ from Debian's openjdk-\d+-jdk-headless, linked by the host's jlink/);
  const manifest = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  t.diagnostic(`image size ${mb(img.SizeBytes)} (kernel ${mb(manifest.kernel.sizeBytes)}, root ${mb(manifest.root.sizeBytes)})`);
  assert.equal(manifest.arch, 'aarch64');
  assert.deepEqual(manifest.kernel.fragments, ['base', 'arm64', 'net']);

  // the boot snapshot (made in the background after the build) stops before the app starts:
  // waiting for it keeps its making out of the time to the first answer
  const snapshots = join(d.home, 'images', img.Id, 'snapshots');
  started = Date.now();
  await waitFor('the boot snapshot', async () => (existsSync(snapshots) && readdirSync(snapshots).some((s) => existsSync(join(snapshots, s, 'state'))) ? true : undefined), FIRST_ANSWER_MS);
  t.diagnostic(`boot snapshot ready ${((Date.now() - started) / 1000).toFixed(1)} s after the push`);

  const port = await freePort();
  started = Date.now();
  const run = await d.cli(['run', 'java-arm', '--name', 'jarm', '-p', `${port}:${APP_PORT}`, '-e', 'KEY=arm64 java']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, FIRST_ANSWER_MS), 'pong');
  t.diagnostic(`unik run to the first HTTP answer: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'arm64 java');
  const argv = bootedFrom((await d.api('GET', '/instances/jarm')).json.Id);
  assert.match(argv[0]!, /qemu-system-aarch64$/);
  assert.deepEqual(argv.slice(argv.indexOf('-M'), argv.indexOf('-M') + 2), ['-M', 'virt']);
  assert.match((await d.cli(['logs', 'jarm'])).stdout, new RegExp(`java-http listening on :${APP_PORT}`));
  assert.equal((await d.cli(['rm', '-f', 'jarm'])).code, 0);
});
