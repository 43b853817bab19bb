// Java for real: plain .java sources are detected, compiled with javac, run on a jlink'ed JRE
// inside the unikernel; bad jars and bad sources get clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, tarOf } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
  },
});
const scratch = mkdtempSync(join(tmpdir(), 'unik-java-'));
let port = 0;

test('push detects Java sources and builds them (javac + jlink runtime)', { timeout: 600_000 }, async () => {
  const r = await d.cli(['push', 'java-http', join(ROOT, 'examples/java-http')]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const img = (await d.api('GET', '/images/java-http')).json;
  assert.equal(img.Language, 'java');
  assert.equal(img.RunSpec.Compiler, 'linux-java-qemu');
  assert.ok(img.SizeBytes > 10_000_000 && img.SizeBytes < 120_000_000, `size ${img.SizeBytes}`);
});

test('run with env and a port forward: pong and the env value, start line in logs', { timeout: 300_000 }, async () => {
  const r = await d.cli(['run', 'java-http', '--name', 'jweb', '-p', `${port}:8080`, '-e', 'KEY=VAL']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // the JVM under TCG emulation is slow to start
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, 120_000), 'pong');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'VAL');
  const logs = await d.cli(['logs', 'jweb']);
  assert.match(logs.stdout, /java-http listening on :8080/);
  assert.equal((await d.cli(['rm', '-f', 'jweb'])).code, 0);
});

test('a jar without Main-Class: 400 UNIK_ERR_NO_MAIN_CLASS', { timeout: 120_000 }, async () => {
  const src = join(scratch, 'nomain-src');
  const dir = join(scratch, 'nomain');
  mkdirSync(src, { recursive: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(src, 'Lib.java'), 'public class Lib { public static int two() { return 2; } }\n');
  execFileSync('javac', ['-d', join(src, 'classes'), join(src, 'Lib.java')]);
  execFileSync('jar', ['--create', '--file', join(dir, 'lib.jar'), '-C', join(src, 'classes'), '.']);
  const r = await d.upload('nomain', tarOf(dir));
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_NO_MAIN_CLASS');
  assert.match(r.json.hint, /Main-Class|entry/);
});

test('a .java with a syntax error: 422 with javac output', { timeout: 120_000 }, async () => {
  const dir = join(scratch, 'broken');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Main.java'), 'public class Main {\n  public static void main(String[] args) {\n    System.out.println("hi")\n  }\n}\n');
  const r = await d.upload('broken', tarOf(dir), '?lang=java');
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.match(r.json.message, /javac failed/);
  assert.match(r.json.message, /';' expected/);
});

test('a Maven project without a jar: 400 telling to build the jar first', { timeout: 60_000 }, async () => {
  const dir = join(scratch, 'maven');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pom.xml'), '<project></project>\n');
  const r = await d.upload('maven', tarOf(dir), '?lang=java');
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.match(r.json.message, /mvn package/);
  assert.deepEqual(
    (await d.api('GET', '/images')).json.map((i: { Name: string }) => i.Name),
    ['java-http'],
  );
});
