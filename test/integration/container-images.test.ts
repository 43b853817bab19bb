// Container images in: a Debian image of Redis, made here with debootstrap and podman
// (container-fixtures.ts), becomes a unikernel with `unik push --from-image` from a
// docker-archive, boots under QEMU and answers its own client from the host. (nginx and
// PostgreSQL from the same fixtures do not run yet: the guest kernel has no IPv6, which nginx's
// default site listens on, and an image Volume needs a volume initialised from the image.) The root goes on a read-only erofs disk under a tmpfs overlay; the
// image's User, StopSignal, ports and volumes come from its config.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { suiteDaemon, freePort } from './harness.js';
import { ensure, type Fixtures } from './container-fixtures.js';

const run = promisify(execFile);
let fx: Fixtures;
const d = suiteDaemon();
/** the first push may build the root-disk kernel (4-6 min on 2 cores) */
const KERNEL_BUILD_MS = 15 * 60_000;

before(async () => {
  fx = await ensure({ log: (m) => console.error(`fixtures: ${m}`) });
}, { timeout: 40 * 60_000 });
after(() => fx?.destroy());

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`${what} did not happen within ${ms} ms (${String((last as Error | undefined)?.message ?? last)})`);
}

const manifestOf = async (name: string) => {
  const img = (await d.api('GET', `/images/${name}`)).json;
  return { img, manifest: JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8')) };
};

test('Redis from a docker-archive, as its User (redis): redis-cli talks to it from the host', { timeout: KERNEL_BUILD_MS + 300_000 }, async () => {
  const push = await d.cli(['push', 'redis', '--from-image', `docker-archive:${fx.images.redis.dockerArchive}`], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const { manifest } = await manifestOf('redis');
  assert.ok(manifest.user && manifest.user.uid !== 0, `runs as the image's user: ${JSON.stringify(manifest.user)}`);
  const port = await freePort();
  assert.equal((await d.cli(['run', 'redis', '--name', 'kv', '-p', `${port}:6379`, '-m', '256'])).code, 0);
  const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 }).then((r) => r.stdout.trim());
  await until('redis to answer', async () => ((await cli('ping')) === 'PONG' ? true : undefined), 180_000);
  assert.equal(await cli('set', 'unik', 'unikernel'), 'OK');
  assert.equal(await cli('get', 'unik'), 'unikernel');
  // its WorkingDir, writable by its user on the overlay: a save works
  assert.equal(await cli('config', 'get', 'dir'), 'dir\n/var/lib/redis');
  assert.equal(await cli('save'), 'OK');
  assert.equal((await d.cli(['rm', '-f', 'kv'])).code, 0);
});
