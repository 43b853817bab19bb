// C (static, musl), C++ (dynamic, with its libraries) and any Linux program (a Debian package's
// binary), built into unikernels and run for real; and the manifest and native bad paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor, tarOf } from './harness.js';

const d = suiteDaemon({
  teardown: () => rmSync(scratch, { recursive: true, force: true }),
});
const scratch = mkdtempSync(join(tmpdir(), 'unik-native-'));

test('C: a Makefile project becomes one static binary; pong, env and logs', async () => {
  const push = await d.cli(['push', 'c-http', join(ROOT, 'examples/c-http')]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const img = (await d.api('GET', '/images/c-http')).json;
  assert.equal(img.Language, 'c', 'detected from the Makefile');
  assert.ok(img.SizeBytes < 3_000_000, `a static C image is small: ${img.SizeBytes}`);
  const port = await freePort();
  assert.equal((await d.cli(['run', 'c-http', '--name', 'c', '-p', `${port}:8080`, '-e', 'KEY=VAL'])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'VAL');
  assert.match((await d.cli(['logs', 'c'])).stdout, /c-http listening on :8080/);
  assert.equal((await d.cli(['rm', '-f', 'c'])).code, 0);
});

test('C++: plain sources, linked dynamically, with libstdc++ and the loader copied in', async () => {
  const dir = join(scratch, 'cpp');
  mkdirSync(dir);
  writeFileSync(join(dir, 'hello.cpp'), '#include <iostream>\n#include <string>\nint main(int argc, char** argv) { std::string who = argc > 1 ? argv[1] : "nobody"; std::cout << "hello from c++, " << who << std::endl; return 5; }\n');
  const r = await d.upload('cpp-hello', tarOf(dir), '?args=unik');
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.Language, 'cpp');
  const run = await d.api('POST', '/instances/run', { ImageName: 'cpp-hello', InstanceName: 'cpp' });
  assert.equal(run.status, 201);
  const done = await waitFor('the program to finish', async () => {
    const i = (await d.api('GET', '/instances/cpp')).json;
    return i.State === 'stopped' ? i : undefined;
  }, 90_000);
  assert.equal(done.ExitCode, 5);
  assert.match((await d.cli(['logs', 'cpp'])).stdout, /hello from c\+\+, unik/);
});

test('elf: a program from a Debian package (webfsd) does its job in the unikernel', async () => {
  const push = await d.cli(['push', 'webfs', join(ROOT, 'test/fixtures/elf-webfs')]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const img = (await d.api('GET', '/images/webfs')).json;
  assert.equal(img.Language, 'elf');
  assert.equal(img.RunSpec.DefaultInstanceMemory, 64, 'memory from unik.yaml');
  const inspect = (await d.api('GET', '/v1.43/images/webfs/json')).json;
  assert.deepEqual(inspect.Config.ExposedPorts, { '8080/tcp': {} }, 'ports from unik.yaml');
  const port = await freePort();
  assert.equal((await d.cli(['run', 'webfs', '--name', 'web', '-p', `${port}:8080`])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong', 'webfsd served the file added by unik.yaml files:');
  assert.equal((await d.cli(['rm', '-f', 'web'])).code, 0);
});

test('bad input: a C build failure shows the compiler output; nothing stored', async () => {
  const dir = join(scratch, 'broken-c');
  mkdirSync(dir);
  writeFileSync(join(dir, 'main.c'), 'int main(void) { return undefined_symbol; }\n');
  const r = await d.upload('broken-c', tarOf(dir));
  assert.equal(r.status, 422);
  assert.match(r.json.message, /musl-gcc failed:[\s\S]*undefined_symbol/);
  assert.equal((await d.api('GET', '/images/broken-c')).status, 404);
});

test('bad input: a shared library that cannot be resolved is named', async () => {
  const dir = join(scratch, 'missing-lib');
  const build = join(scratch, 'libbuild');
  mkdirSync(dir);
  mkdirSync(build);
  writeFileSync(join(build, 'gone.c'), 'int gone(void) { return 1; }\n');
  writeFileSync(join(build, 'main.c'), 'int gone(void);\nint main(void) { return gone(); }\n');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', join(build, 'libunikgone.so'), join(build, 'gone.c')]);
  execFileSync('gcc', ['-o', join(dir, 'prog'), join(build, 'main.c'), `-L${build}`, '-lunikgone']);
  rmSync(join(build, 'libunikgone.so'));
  writeFileSync(join(dir, 'unik.yaml'), 'language: elf\nentry: prog\n');
  const r = await d.upload('missing-lib', tarOf(dir));
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_LIBRARY_NOT_FOUND');
  assert.match(r.json.message, /libunikgone\.so/);
});

test('bad input: unik.yaml with an unknown key names the key; an elf entry outside the allowed host directories is refused', async () => {
  const dir = join(scratch, 'typo');
  mkdirSync(dir);
  writeFileSync(join(dir, 'main.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(dir, 'unik.yaml'), 'langauge: c\n');
  let r = await d.upload('typo', tarOf(dir));
  assert.equal(r.status, 400);
  assert.match(r.json.message, /unknown key "langauge"/);
  writeFileSync(join(dir, 'unik.yaml'), 'language: elf\nentry: /etc/passwd\n');
  r = await d.upload('typo', tarOf(dir));
  assert.equal(r.status, 400);
  assert.match(r.json.message, /outside the host directories/);
  writeFileSync(join(dir, 'unik.yaml'), 'language: c\nfiles:\n  - {from: ../../etc/shadow, to: /x}\n');
  r = await d.upload('typo', tarOf(dir));
  assert.equal(r.status, 400);
  assert.match(r.json.message, /leaves the app directory/);
  writeFileSync(join(dir, 'unik.yaml'), 'language: c\nfiles:\n  - {from: /etc/shadow, to: /x}\n');
  r = await d.upload('typo', tarOf(dir));
  assert.equal(r.status, 400);
  assert.match(r.json.message, /outside the host directories images may take files from/);
});
