// The container fixtures are what they claim: each image runs under podman (runc) and its own
// client answers from the host, its layers hold whiteouts and an opaque directory, and its three
// forms (registry, docker-archive, OCI layout) carry the same config. The times printed here,
// `podman run -d` to the first answer, are the container reference for the bench (which measures
// properly); nothing is asserted about them.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ensure, layerWhiteouts, PodmanStore, readOciManifest, FIXTURE_CLIENTS as CLIENTS, FIXTURE_NAMES, type FixtureImage, type FixtureName, type Fixtures } from './container-fixtures.js';
import { freePort } from './harness.js';

const run = promisify(execFile);
const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** How podman gets each image: every form of the fixtures is run once. */
const SOURCE: Record<FixtureName, 'registry' | 'docker-archive' | 'oci'> = { nginx: 'registry', redis: 'docker-archive', postgres: 'oci' };

async function answers(name: FixtureName, port: number, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await CLIENTS[name](port).catch(() => false)) return true;
    await sleep(50);
  }
  return false;
}

async function skopeoRaw(ref: string): Promise<{ config: { digest: string }; layers: unknown[] }> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ref], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout);
}

describe('container fixtures: Debian images of nginx, Redis and PostgreSQL made here', { timeout: 40 * 60_000 }, () => {
  let fx: Fixtures;
  let store: PodmanStore;

  before(async () => {
    fx = await ensure({ log: (m) => console.error(`fixtures: ${m}`) });
    store = await PodmanStore.create('unik-fixtures-run-');
  });

  after(async () => {
    await store?.destroy();
    await fx?.destroy();
  });

  test('every image has the config it claims and at least two layers; the three forms carry the same config', async (t) => {
    t.diagnostic(`fresh build of the fixtures took ${fx.buildSeconds.base} s (debootstrap) + ${fx.buildSeconds.images} s (three package layers)`);
    const want: Record<FixtureName, Partial<FixtureImage['config']>> = {
      nginx: { Cmd: ['nginx', '-g', 'daemon off;'], ExposedPorts: { '80/tcp': {} }, StopSignal: 'SIGQUIT' },
      redis: { Cmd: ['redis-server', '--protected-mode', 'no'], User: 'redis', ExposedPorts: { '6379/tcp': {} }, WorkingDir: '/var/lib/redis' },
      postgres: { Entrypoint: ['docker-entrypoint.sh'], Cmd: ['postgres'], User: 'postgres', ExposedPorts: { '5432/tcp': {} }, StopSignal: 'SIGINT', Volumes: { '/var/lib/postgresql/data': {} } },
    };
    for (const name of FIXTURE_NAMES) {
      const img = fx.images[name];
      for (const [k, v] of Object.entries(want[name])) assert.deepEqual(img.config[k as keyof typeof img.config], v, `${name} ${k}`);
      assert.ok(img.layers.length >= 2, `${name} has ${img.layers.length} layers`);
      // skopeo reads each form; the config blob is the same one everywhere
      const forms = { registry: `docker://${img.ref}`, 'docker-archive': `docker-archive:${img.dockerArchive}`, oci: `oci:${img.ociLayout}:latest` };
      for (const [form, ref] of Object.entries(forms)) {
        const m = await skopeoRaw(ref);
        assert.equal(m.config.digest, img.configDigest, `${name} ${form} config`);
        assert.equal(m.layers.length, img.layers.length, `${name} ${form} layers`);
      }
      const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${img.ref}`]);
      const info = JSON.parse(stdout) as { Layers: string[]; Os: string; Architecture: string };
      assert.equal(info.Os, 'linux');
      assert.deepEqual(info.Layers, img.layers.map((l) => l.digest), `${name}: the registry serves the layout's blobs`);
      t.diagnostic(`${name}: ${img.package} ${img.packageVersion}, ${img.layers.length} layers, ${MB(img.sizeBytes)} unpacked, ${MB(img.compressedBytes)} gzip; ${img.ref}`);
    }
  });

  test('the package layers delete files of the base (whiteouts) and nginx empties a directory (opaque)', async (t) => {
    // read from the files themselves, not from what the build recorded
    const nginx = fx.images.nginx;
    const oci = await readOciManifest(nginx.ociLayout);
    const top = await layerWhiteouts(join(nginx.ociLayout, 'blobs', 'sha256', oci.layers[1]!.digest.slice(7)));
    assert.ok(top.whiteouts.includes('/etc/motd'), 'a file whiteout');
    assert.ok(top.whiteouts.includes('/usr/share/man'), 'a directory whiteout');
    assert.deepEqual(top.opaqueDirs, ['/usr/share/doc']);
    const base = await layerWhiteouts(join(nginx.ociLayout, 'blobs', 'sha256', oci.layers[0]!.digest.slice(7)));
    assert.deepEqual([base.whiteouts, base.opaqueDirs], [[], []], 'the base layer deletes nothing');
    // the docker-archive's (uncompressed) layer holds the same entries
    const dir = await mkdtemp(join(tmpdir(), 'unik-fixtures-archive-'));
    try {
      await run('tar', ['-C', dir, '-xf', nginx.dockerArchive]);
      const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[]; RepoTags: string[] }[];
      assert.deepEqual(manifest[0]!.RepoTags, [nginx.tag]);
      const archived = await layerWhiteouts(join(dir, manifest[0]!.Layers[1]!));
      assert.deepEqual(archived.whiteouts.sort(), [...top.whiteouts].sort());
      assert.deepEqual(archived.opaqueDirs, top.opaqueDirs);
    } finally {
      await run('rm', ['-rf', dir]);
    }
    for (const name of FIXTURE_NAMES) {
      const l = fx.images[name].layers.flatMap((x) => x.whiteouts);
      assert.ok(l.length > 0, `${name} has whiteouts`);
    }
    t.diagnostic(`nginx's package layer: ${top.whiteouts.length} whiteouts (${top.linkedWhiteouts.length} written as regular entries with a link name, which node-tar's Parser drops), opaque ${top.opaqueDirs.join(' ')}`);
  });

  for (const name of FIXTURE_NAMES) {
    test(`podman runs ${name} and its own client answers from the host`, async (t) => {
      const img = fx.images[name];
      const source = SOURCE[name];
      // pull -q prints the image id; load names it by the archive's RepoTags
      let local: string;
      if (source === 'registry') local = (await store.podman(['pull', '-q', '--tls-verify=false', img.ref])).trim();
      else if (source === 'oci') {
        // podman 4.3 names an oci: pull after its path, which a dot in ~/.unik makes invalid: skopeo copies it in
        local = `localhost/unik-fixtures/${name}:from-oci`;
        await run('skopeo', ['copy', '-q', `oci:${img.ociLayout}:latest`, store.storageRef(local)], { maxBuffer: 16 << 20 });
      }
      else {
        await store.podman(['load', '-q', '-i', img.dockerArchive]);
        local = img.tag;
      }
      const port = await freePort();
      const cname = `fixture-${name}`;
      const t0 = performance.now();
      const proc = spawn('podman', store.argv(['run', '-d', '--name', cname, '-p', `127.0.0.1:${port}:${img.port}`, local]), { env: store.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      proc.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((r) => proc.once('exit', r));
      assert.equal(code, 0, `podman run: ${stderr}`);
      try {
        const ok = await answers(name, port, 120_000);
        const ms = performance.now() - t0;
        if (!ok) assert.fail(`${name} never answered; logs:\n${await store.podman(['logs', cname]).catch((e: Error) => e.message)}`);
        t.diagnostic(`podman run -d to the first answer (${name}, from ${source}): ${(ms / 1000).toFixed(2)} s; image ${MB(img.sizeBytes)} unpacked, ${MB(img.compressedBytes)} gzip`);
        if (img.config.User) {
          const who = (await store.podman(['exec', cname, 'id', '-un'])).trim();
          assert.equal(who, img.config.User, `${name} runs as its image's user`);
        }
        if (name === 'nginx') {
          // the master stays root; its workers drop to www-data (several processes)
          const top = await store.podman(['top', cname, 'user', 'args']);
          assert.match(top, /www-data\s+nginx: worker process/);
        }
        if (name === 'redis') {
          const set = await run('redis-cli', ['-p', String(port), '-h', '127.0.0.1', 'set', 'k', 'v']);
          assert.equal(set.stdout.trim(), 'OK');
        }
        if (name === 'postgres') {
          const { stdout } = await run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-tAc', 'select current_user, version()']);
          assert.match(stdout, /^postgres\|PostgreSQL 15\./);
        }
      } finally {
        await store.podman(['rm', '-f', '-v', '-t', '5', cname]).catch(() => undefined);
      }
    });
  }
});
