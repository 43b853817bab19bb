// Bad input gets a clear message and the right status, and the store is unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, cpSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, ROOT, freePort, tarOf } from './harness.js';

const d = new Daemon();
const scratch = mkdtempSync(join(tmpdir(), 'unik-bad-'));

before(() => d.start());
after(() => d.destroy());

async function storeSnapshot() {
  return JSON.stringify([(await d.api('GET', '/images')).json, (await d.api('GET', '/instances')).json]);
}

test('a tarfile that is not a tar: 400, nothing stored', async () => {
  const before = await storeSnapshot();
  const r = await d.upload('junk', new Blob(['this is not a tarball']), '?lang=go');
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_BAD_TARBALL');
  assert.match(r.json.message, /not a (valid )?tar/);
  assert.equal(await storeSnapshot(), before);
});

test('a tar with paths escaping its root is refused', async () => {
  const dir = join(scratch, 'evil');
  mkdirSync(join(dir, 'a'), { recursive: true });
  writeFileSync(join(dir, 'x'), 'x');
  const file = join(scratch, 'evil.tar');
  execFileSync('tar', ['-cf', file, '-C', join(dir, 'a'), '--absolute-names', '../x']);
  const r = await d.upload('evil', new Blob([readFileSync(file)]), '?lang=go');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /outside its root|not a (valid )?tar/);
});

test('no Go module, undetectable language, unknown language or provider: 400 with what to do', async () => {
  const dir = join(scratch, 'nomod');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'README'), 'hello');
  let r = await d.upload('nomod', tarOf(dir), '?lang=go');
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_NO_GO_MODULE');
  assert.match(r.json.hint, /go mod init/);
  r = await d.upload('nomod', tarOf(dir));
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_LANGUAGE_NOT_DETECTED');
  assert.match(r.json.message, /go\.mod/);
  r = await d.upload('nomod', tarOf(dir), '?lang=cobol');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /unknown language "cobol"/);
  assert.match(r.json.hint, /go/);
  r = await d.upload('nomod', tarOf(dir), '?lang=go&provider=vbox');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /unknown provider "vbox"/);
  assert.deepEqual((await d.api('GET', '/images')).json, []);
});

test('a Go compile error: 422 with the compiler output, nothing stored', async () => {
  const dir = join(scratch, 'broken');
  cpSync(join(ROOT, 'examples/go-http'), dir, { recursive: true });
  writeFileSync(join(dir, 'broken.go'), 'package main\n\nfunc broken() { undefinedThing() }\n');
  const r = await d.upload('broken', tarOf(dir), '?lang=go');
  assert.equal(r.status, 422);
  assert.match(r.json.message, /undefined: undefinedThing/);
  assert.deepEqual((await d.api('GET', '/images')).json, []);
  // and through the CLI: the compiler output is shown, the exit code is not 0
  const cli = await d.cli(['push', 'broken', dir]);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr + cli.stdout, /undefined: undefinedThing/);
});

test('a build streams its progress, and errors arrive in-band', async () => {
  const form = new FormData();
  form.append('tarfile', tarOf(join(ROOT, 'examples/go-http')), 'app.tar.gz');
  const res = await fetch(`${d.url}/images/streamed/create?lang=go`, { method: 'POST', body: form, headers: { accept: 'application/x-ndjson' } });
  assert.equal(res.status, 200);
  const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.Progress?.Step === 'compile'));
  assert.equal(lines.at(-1).Image.Name, 'streamed');
});

test('a duplicate image name without --force: 409; with force it is replaced', async () => {
  const body = () => tarOf(join(ROOT, 'examples/go-http'));
  const before = (await d.api('GET', '/images/streamed')).json;
  const r = await d.upload('streamed', body(), '?lang=go');
  assert.equal(r.status, 409);
  assert.match(r.json.hint, /--force/);
  assert.equal((await d.api('GET', '/images/streamed')).json.Id, before.Id);
  const forced = await d.upload('streamed', body(), '?lang=go&force=true');
  assert.equal(forced.status, 201);
  assert.notEqual(forced.json.Id, before.Id);
  assert.equal((await d.api('GET', '/images')).json.length, 1);
});

test('run of an unknown image: 404; a port already in use: 409; nothing stored', async () => {
  let r = await d.api('POST', '/instances/run', { ImageName: 'nope' });
  assert.equal(r.status, 404);
  assert.equal(r.json.code, 'UNIK_ERR_IMAGE_NOT_FOUND');
  const busy = createServer();
  const port = await freePort();
  await new Promise<void>((res) => busy.listen(port, '127.0.0.1', res));
  r = await d.api('POST', '/instances/run', { ImageName: 'streamed', InstanceName: 'clash', Ports: [`${port}:8080`] });
  busy.close();
  assert.equal(r.status, 409);
  assert.match(r.json.message, new RegExp(`port ${port}/tcp on 127.0.0.1 is already in use`));
  r = await d.api('POST', '/instances/run', { ImageName: 'streamed', Ports: ['not-a-port'] });
  assert.equal(r.status, 400);
  r = await d.api('POST', '/instances/run', { ImageName: 'streamed', Env: { 'BAD KEY': 'x' } });
  assert.equal(r.status, 400);
  r = await d.api('POST', '/instances/run', { Image: 'streamed' });
  assert.equal(r.status, 400, 'a body without ImageName');
  assert.deepEqual((await d.api('GET', '/instances')).json, []);
  const cli = await d.cli(['run', 'streamed', '--env', 'NOEQUALS']);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /=/);
});

test('two runs racing for one name: one wins, the other gets 409, one VM is left', async () => {
  const run = () => d.api('POST', '/instances/run', { ImageName: 'streamed', InstanceName: 'racer' });
  const results = await Promise.all([run(), run()]);
  assert.deepEqual(results.map((r) => r.status).sort(), [201, 409], JSON.stringify(results.map((r) => r.json)));
  const list = (await d.api('GET', '/instances')).json as { Name: string }[];
  assert.deepEqual(list.map((i) => i.Name), ['racer']);
  // QEMU itself (argv[0]), not its supervisor or the wrappers that bind it to the supervisor;
  // both contenders would have been named after the instance
  const vms = execFileSync('pgrep', ['-fc', `^qemu-system.* -name unik-racer( |$)`], { encoding: 'utf8' }).trim();
  assert.equal(vms, '1', 'the loser\'s VM was stopped');
  assert.equal((await d.api('DELETE', '/instances/racer?force=true')).status, 204);
});

test('unknown routes and ids: JSON 404s, not 500s', async () => {
  for (const [method, path] of [['GET', '/images/nope'], ['GET', '/instances/nope'], ['DELETE', '/instances/nope'], ['POST', '/instances/nope/stop'], ['GET', '/instances/nope/logs'], ['GET', '/no/such/route']] as const) {
    const r = await d.api(method, path);
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.ok(r.json.message, `${method} ${path} has a message`);
  }
});

test('the CLI with no daemon says how to start one, in one line', async () => {
  const closed = await freePort();
  const r = await d.cli(['--host', `127.0.0.1:${closed}`, 'ps']);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /cannot reach the unik daemon.*unik daemon/);
});
