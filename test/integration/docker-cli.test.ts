// The stock docker CLI pointed at the unik daemon (`docker -H tcp://127.0.0.1:PORT`), as in
// the seed: every call runs under `timeout -s KILL`, so a missed wait or attach fails, not hangs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
    const push = await d.cli(['push', 'unikdemo', join(ROOT, 'examples/go-http')]);
    assert.equal(push.code, 0, push.stderr);
  },
});
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

function docker(args: string[], timeoutS = 60): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('timeout', ['-s', 'KILL', String(timeoutS), 'docker', '-H', `tcp://127.0.0.1:${d.port}`, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('docker version and docker images list the daemon and the unikernel images', async () => {
  const v = await docker(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}']);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+ 1\.43 linux/);
  const images = await docker(['images']);
  assert.equal(images.code, 0, images.stderr);
  assert.match(images.stdout, /unikdemo\s+latest\s+[0-9a-f]{12}\s+.*\s+[1-9]\.\d+MB/);
});

test('docker run -d -p -e boots the unikernel; HTTP gets pong and the env value; ps shows it', async () => {
  const run = await docker(['run', '-d', '--name', 'web', '-p', `${port}:8080`, '-e', 'KEY=VAL', 'unikdemo']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout.trim(), /^[0-9a-f]{64}$/);
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  assert.equal(await httpUntil(app('/env_test')), 'VAL');
  const ps = await docker(['ps']);
  assert.match(ps.stdout, new RegExp(`unikdemo\\s+"/app/go-http"\\s+.*Up .*127\\.0\\.0\\.1:${port}->8080/tcp\\s+web`));
});

test('docker logs, and logs -f sees a new line', async () => {
  const logs = await docker(['logs', 'web']);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /go-http listening on :8080/);
  const stamped = await docker(['logs', '-t', '--tail', '1', 'web']);
  assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z go-http listening/);
  const follow = spawn('timeout', ['-s', 'KILL', '60', 'docker', '-H', `tcp://127.0.0.1:${d.port}`, 'logs', '-f', 'web']);
  let out = '';
  follow.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor('the existing log', async () => (out.includes('listening') ? true : undefined), 20_000);
  await httpUntil(app('/log_test?line=a-new-line-77'));
  await waitFor('the new line', async () => (out.includes('a-new-line-77') ? true : undefined), 20_000);
  follow.kill('SIGKILL');
});

test('docker inspect shows state, config, ports and the real pid', async () => {
  const r = await docker(['inspect', 'web']);
  assert.equal(r.code, 0, r.stderr);
  const [c] = JSON.parse(r.stdout);
  assert.equal(c.Name, '/web');
  assert.equal(c.State.Status, 'running');
  assert.equal(c.State.Running, true);
  assert.ok(c.State.Pid > 0);
  assert.equal(c.Config.Tty, false);
  assert.ok(c.Config.Env.includes('KEY=VAL'));
  assert.deepEqual(c.NetworkSettings.Ports['8080/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(port) }]);
  const fmt = await docker(['inspect', '-f', '{{.State.Status}} {{.Config.Image}}', 'web']);
  assert.equal(fmt.stdout.trim(), 'running unikdemo');
});

test('docker stop, start, and rm -f', async () => {
  let r = await docker(['stop', 'web']);
  assert.equal(r.code, 0, r.stderr);
  const ps = await docker(['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
  assert.match(ps.stdout, /web Exited \(143\)/);
  r = await docker(['start', 'web']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  r = await docker(['rm', 'web']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot remove a running container/);
  r = await docker(['rm', '-f', 'web']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await docker(['ps', '-a', '-q'])).stdout.trim(), '');
});

test('docker run --rm removes the container once the app exits', async () => {
  const r = await docker(['run', '-d', '--rm', '--name', 'tmp', '-p', `${port}:8080`, 'unikdemo']);
  assert.equal(r.code, 0, r.stderr);
  await httpUntil(app('/exit_test?code=0'));
  await waitFor('the container to go', async () => ((await docker(['ps', '-a', '-q'])).stdout.trim() === '' ? true : undefined), 30_000);
});

test('docker run (attached) prints the output and exits with the app exit code; Cmd is appended to the args', async () => {
  const child = spawn('timeout', ['-s', 'KILL', '90', 'docker', '-H', `tcp://127.0.0.1:${d.port}`, 'run', '--name', 'att', '-p', `${port}:8080`, 'unikdemo', 'extra', 'args']);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await httpUntil(app('/log_test?line=attached-line'));
  await httpUntil(app('/exit_test?code=3'));
  assert.equal(await exited, 3);
  assert.match(out, /go-http listening on :8080 \(args: extra args\)/);
  assert.match(out, /attached-line/);
  assert.equal((await docker(['rm', 'att'])).code, 0);
});

test('docker volume ls lists unik volumes', async () => {
  assert.equal((await d.cli(['create-volume', 'vol1', '16'])).code, 0);
  const r = await docker(['volume', 'ls']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /unik\s+vol1/);
});

test('bad input: clear Docker-style errors, nothing changed, no hung client', async () => {
  const before = (await d.api('GET', '/instances')).text;
  let r = await docker(['run', '-d', 'nosuchimage']);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /Unable to find image 'nosuchimage:latest' locally/);
  // an ordinary image is built into a unikernel (From a container image): Docker Hub is named, and
  // not reachable from here, which the error says
  assert.match(r.stderr, /cannot reach the registry docker\.io/);
  r = await docker(['logs', 'nosuchcontainer']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such container: nosuchcontainer/);
  r = await docker(['stop', 'nosuchcontainer']);
  assert.equal(r.code, 1);
  const busy = createServer();
  await new Promise<void>((res) => busy.listen(port, '127.0.0.1', res));
  r = await docker(['run', '-d', '--name', 'clash', '-p', `${port}:8080`, 'unikdemo']);
  busy.close();
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`port ${port}/tcp on 127.0.0.1 is already in use`));
  await docker(['rm', '-f', 'clash']);
  r = await docker(['run', '-d', '-v', '/etc:/data', 'unikdemo']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not host paths/);
  const malformed = await fetch(`${d.url}/v1.43/containers/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Image": ' });
  assert.equal(malformed.status, 400);
  assert.ok(((await malformed.json()) as { message: string }).message);
  const noImage = await fetch(`${d.url}/v1.43/containers/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Cmd": ["x"]}' });
  assert.equal(noImage.status, 400);
  const unsupported = await docker(['swarm', 'init']);
  assert.notEqual(unsupported.code, 0);
  assert.match(unsupported.stderr, /unik does not support POST \/swarm\/init/);
  assert.equal((await d.api('GET', '/instances')).text, before);
});
