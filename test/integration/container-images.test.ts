// Container images in: Debian images of nginx, Redis and PostgreSQL, made here with debootstrap
// and podman (container-fixtures.ts), become unikernels with `unik push --from-image` (from
// Debian's docker-registry, a docker-archive and an OCI layout), boot under QEMU and answer
// their own clients from the host (curl, redis-cli, psql). The root goes on a read-only erofs
// disk under a tmpfs overlay; the image's User, StopSignal, ports and volumes come from its
// config. A `--slim` nginx keeps only what it opened while a probe exercised it, and still answers.
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

const curl = (port: number, path = '/') => run('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '5', `http://127.0.0.1:${port}${path}`]).then((r) => r.stdout);
const logsOf = async (name: string) => (await d.cli(['logs', name])).stdout;

async function serveNginx(image: string, name: string): Promise<number> {
  const port = await freePort();
  const r = await d.cli(['run', image, '--name', name, '-p', `${port}:80`]);
  assert.equal(r.code, 0, r.stderr + r.stdout + (r.code ? await logsOf(name) : ''));
  const page = await until(`${name} to answer`, async () => {
    const out = await curl(port);
    return out.endsWith('\n200') ? out : undefined;
  }, 180_000);
  assert.match(page, /Welcome to nginx/);
  return port;
}

test('nginx from the registry (its default site listens on [::] too): welcome page and 404, access log in unik logs, SIGQUIT stops it cleanly', { timeout: KERNEL_BUILD_MS + 300_000 }, async () => {
  const push = await d.cli(['push', 'nginx', '--from-image', fx.images.nginx.ref], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const { manifest } = await manifestOf('nginx');
  assert.equal(manifest.stopSignal, 'SIGQUIT');
  assert.deepEqual(manifest.ports, [80]);
  const port = await serveNginx('nginx', 'web');
  assert.match(await curl(port, '/nothing-here'), /\n404$/);
  // the image links its access log to /dev/stdout: the guest's console, which is the instance's log
  await until('the access log line', async () => (/"GET \/nothing-here HTTP\/1\.1" 404/.test(await logsOf('web')) ? true : undefined), 30_000);
  assert.equal((await d.cli(['stop', 'web'])).code, 0);
  // SIGQUIT is nginx's graceful shutdown: the master waits for its workers and exits 0
  const web = (await d.api('GET', '/instances/web')).json;
  assert.equal(web.ExitCode, 0, JSON.stringify(web));
  assert.match(await logsOf('web'), /app exited with status 0/);
  assert.equal((await d.cli(['rm', '-f', 'web'])).code, 0);
});

test('nginx --slim: profiled once under its probe, keeps a fraction of the files and still serves', { timeout: 900_000 }, async () => {
  const bad = await d.cli(['push', 'nginx-bad', '--from-image', fx.images.nginx.ref, '--slim', '--probe', 'http://10.0.0.1:80/']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /bad probe/);
  const hostile = await d.cli(['push', 'nginx-bad', '--from-image', fx.images.nginx.ref, '--slim', '--keep', '/usr/../../etc/shadow']);
  assert.notEqual(hostile.code, 0);
  assert.match(hostile.stderr, /not an absolute path of the image/);
  assert.equal((await d.api('GET', '/images/nginx-bad')).status, 404, 'nothing was recorded');

  const push = await d.cli(['push', 'nginx-slim', '--from-image', fx.images.nginx.ref, '--slim', '--probe', 'http://:80/'], { timeoutMs: 600_000 });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  assert.match(push.stdout, /keeping \d+ of \d+ files/);
  const { img, manifest } = await manifestOf('nginx-slim');
  const full = await manifestOf('nginx');
  assert.equal(manifest.slim.probe, 'http://:80/');
  assert.ok(manifest.slim.keptFiles < manifest.slim.totalFiles / 2, JSON.stringify(manifest.slim));
  assert.ok(manifest.rootDisk.sizeBytes < full.manifest.rootDisk.sizeBytes, `slim ${manifest.rootDisk.sizeBytes} < full ${full.manifest.rootDisk.sizeBytes}`);
  assert.ok(img.SizeMb === undefined || img.SizeMb <= full.img.SizeMb);
  // the profiling VM left nothing behind: no instance, no image folder beside the two images
  assert.deepEqual((await d.api('GET', '/instances')).json, []);
  const port = await serveNginx('nginx-slim', 'web-slim');
  assert.match(await curl(port, '/nothing-here'), /\n404$/);
  assert.equal((await d.cli(['rm', '-f', 'web-slim'])).code, 0);
});

const psql = (port: number, sql: string) =>
  run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-tAc', sql], { timeout: 10_000, env: { ...process.env, PGCONNECT_TIMEOUT: '3' } }).then((r) => r.stdout.trim());

test('PostgreSQL from an OCI layout, as postgres: initdb on an empty volume filled from the image, data kept across a restart; without a volume it runs on the overlay', { timeout: 1_200_000 }, async () => {
  const push = await d.cli(['push', 'pg', '--from-image', `oci:${fx.images.postgres.ociLayout}:latest`], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const { manifest } = await manifestOf('pg');
  assert.deepEqual(manifest.mountPoints, ['/var/lib/postgresql/data']);
  assert.equal(manifest.mountPointsOptional, true);
  assert.equal(manifest.stopSignal, 'SIGINT');

  assert.equal((await d.cli(['create-volume', 'pgdata', '--size', '64'])).code, 0);
  let port = await freePort();
  assert.equal((await d.cli(['run', 'pg', '--name', 'db', '-p', `${port}:5432`, '-m', '256', '--vol', 'pgdata:/var/lib/postgresql/data'])).code, 0);
  await until('postgres to answer', async () => ((await psql(port, 'select 1')) === '1' ? true : undefined), 300_000);
  assert.equal(await psql(port, 'select current_user'), 'postgres');
  await psql(port, "create table kept (v text); insert into kept values ('across a restart')");
  // the image's data directory (postgres, 0700) is what the fresh volume became
  assert.match(await logsOf('db'), /volume at \/var\/lib\/postgresql\/data was empty: filled from the image/);
  assert.equal((await d.cli(['stop', 'db'])).code, 0);
  assert.match(await logsOf('db'), /app exited with status 0/, 'SIGINT is a fast, clean shutdown');
  assert.equal((await d.cli(['start', 'db'])).code, 0);
  await until('postgres to answer again', async () => ((await psql(port, 'select v from kept')) === 'across a restart' ? true : undefined), 300_000);
  assert.equal((await d.cli(['rm', '-f', 'db'])).code, 0);

  // no volume: the image's own (empty) data directory on the overlay, gone with the instance
  port = await freePort();
  assert.equal((await d.cli(['run', 'pg', '--name', 'db2', '-p', `${port}:5432`, '-m', '256'])).code, 0);
  await until('postgres on the overlay to answer', async () => ((await psql(port, 'select 2')) === '2' ? true : undefined), 300_000);
  assert.equal((await d.cli(['rm', '-f', 'db2'])).code, 0);
});
