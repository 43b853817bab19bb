// The same scenario through dockerode, which sends unversioned paths and true/false booleans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { suiteDaemon, ROOT, freePort, httpUntil } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
    docker = new Docker({ host: '127.0.0.1', port: d.port, protocol: 'http' });
    const push = await d.cli(['push', 'unikdemo', join(ROOT, 'examples/go-http')]);
    assert.equal(push.code, 0, push.stderr);
  },
});
let docker: Docker;
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

test('dockerode: version, ping and images', async () => {
  assert.equal(String(await docker.ping()), 'OK');
  assert.equal((await docker.version()).ApiVersion, '1.43');
  const images = await docker.listImages();
  assert.deepEqual(images.map((i) => i.RepoTags), [['unikdemo:latest']]);
  const img = await docker.getImage('unikdemo').inspect();
  assert.equal(img.Os, 'linux');
});

test('dockerode: create, start, HTTP, list, inspect, logs, stop, start, wait, remove', async () => {
  const c = await docker.createContainer({ Image: 'unikdemo', name: 'web', Env: ['KEY=VAL'], Cmd: ['from-dockerode'], HostConfig: { PortBindings: { '8080/tcp': [{ HostPort: String(port) }] } } });
  assert.equal((await c.inspect()).State.Status, 'created');
  assert.equal((await docker.listContainers({ all: true })).length, 1);
  assert.equal((await docker.listContainers()).length, 0, 'without all, only running ones');
  await c.start();
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  assert.equal(await httpUntil(app('/env_test')), 'VAL');
  const list = await docker.listContainers();
  assert.equal(list[0]?.Names[0], '/web');
  assert.deepEqual(list[0]?.Ports, [{ IP: '127.0.0.1', PrivatePort: 8080, PublicPort: port, Type: 'tcp' }]);
  const info = await c.inspect();
  assert.equal(info.State.Running, true);
  assert.deepEqual(info.Args, ['from-dockerode']);
  const raw = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  docker.modem.demuxStream(new PassThroughFrom(raw), out, out);
  await new Promise((r) => setTimeout(r, 100));
  assert.match(text, /go-http listening on :8080 \(args: from-dockerode\)/);
  await c.stop({ t: 5 });
  assert.equal((await c.inspect()).State.ExitCode, 143);
  await c.start();
  await httpUntil(app('/ping_test'));
  const waited = c.wait();
  await httpUntil(app('/exit_test?code=4'));
  assert.equal((await waited).StatusCode, 4);
  await c.remove({ force: true });
  await assert.rejects(c.inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
});

test('dockerode: unknown image and container are 404s; the Docker volume API is under the version prefix', async () => {
  await assert.rejects(docker.createContainer({ Image: 'nope' }), (e: { statusCode?: number; message: string }) => e.statusCode === 404 && /No such image: nope/.test(e.message));
  await assert.rejects(docker.getContainer('nope').inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
  const versioned = new Docker({ host: '127.0.0.1', port: d.port, protocol: 'http', version: 'v1.43' });
  await versioned.createVolume({ Name: 'dv1', DriverOpts: { size: '16' } });
  const vols = await versioned.listVolumes();
  assert.deepEqual(vols.Volumes.map((v) => v.Name), ['dv1']);
  assert.equal(vols.Volumes[0]?.Driver, 'unik');
});

class PassThroughFrom extends PassThrough {
  constructor(buf: Buffer) {
    super();
    this.end(buf);
  }
}
