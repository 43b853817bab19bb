// The core scenario, for real: the CLI builds examples/go-http into a unikernel, runs it under
// QEMU with env and a port forward, and the test talks to it over HTTP through its whole life.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, refused, waitFor } from './harness.js';

const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
  },
});
let port = 0;
const app = (path: string) => `http://127.0.0.1:${port}${path}`;

test('push builds the Go example into an image (kernel + initramfs + manifest)', async () => {
  const r = await d.cli(['push', 'go-http', join(ROOT, 'examples/go-http'), '--args', 'alpha beta']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /go-http/);
  const images = await d.api('GET', '/images');
  assert.equal(images.status, 200);
  assert.equal(images.json.length, 1);
  const img = images.json[0];
  assert.equal(img.Name, 'go-http');
  assert.equal(img.Infrastructure, 'QEMU');
  assert.equal(img.Language, 'go');
  assert.equal(img.RunSpec.Compiler, 'linux-go-qemu');
  assert.ok(img.SizeBytes > 1_000_000 && img.SizeBytes < 20_000_000, `size ${img.SizeBytes}`);
  assert.ok(!Number.isNaN(Date.parse(img.Created)));
  const list = await d.cli(['images']);
  assert.match(list.stdout, /NAME[\s\S]*go-http/);
});

test('run with env and a port forward: pong and the env value over HTTP, start line in logs', async () => {
  const r = await d.cli(['run', 'go-http', '--name', 'web', '-p', `${port}:8080`, '--env', 'KEY=VAL', '--env', 'OTHER=a=b']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  assert.equal(await httpUntil(app('/env_test')), 'VAL');
  const inst = await d.api('GET', '/instances/web');
  assert.equal(inst.status, 200);
  assert.equal(inst.json.State, 'running');
  assert.equal(inst.json.ImageName, 'go-http');
  assert.deepEqual(inst.json.Ports, [{ HostIp: '127.0.0.1', HostPort: port, GuestPort: 8080, Protocol: 'tcp' }]);
  assert.ok(inst.json.Pid > 0);
  const ps = await d.cli(['ps']);
  assert.match(ps.stdout, /web[\s\S]*running/);
  const logs = await d.cli(['logs', 'web']);
  assert.match(logs.stdout, /go-http listening on :8080 \(args: alpha beta\)/, 'build-time args are baked in');
  // it was restored from the image's boot snapshot, not booted: the env above came over the control line
  assert.ok(bootedFrom(inst.json.Id).includes('-incoming'), 'restored from the boot snapshot');
  assert.ok(existsSync(join(d.home, 'images', inst.json.ImageId, 'snapshots', '64m-tcg', 'state')) || existsSync(join(d.home, 'images', inst.json.ImageId, 'snapshots', '64m-kvm', 'state')));
});

test('bad input: a damaged boot snapshot is dropped, the instance boots cold and answers, the next run has a new snapshot', async () => {
  const img = (await d.api('GET', '/images/go-http')).json;
  const snaps = join(d.home, 'images', img.Id, 'snapshots');
  const dir = readdirSync(snaps).find((n) => /^64m-(tcg|kvm)$/.test(n));
  assert.ok(dir, `a 64 MB snapshot in ${readdirSync(snaps).join(', ')}`);
  writeFileSync(join(snaps, dir, 'state'), 'not a migration stream');
  const p = await freePort();
  const r = await d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: 'damaged', Ports: [`${p}:8080`] });
  assert.equal(r.status, 201, r.text);
  assert.equal(await httpUntil(`http://127.0.0.1:${p}/ping_test`), 'pong');
  assert.ok(!bootedFrom(r.json.Id).includes('-incoming'), 'booted cold');
  assert.match(d.log(), /restoring go-http from its boot snapshot failed, booting cold/);
  assert.equal((await d.api('DELETE', '/instances/damaged?force=true')).status, 204);
  // the next run makes a new template and restores it
  const p2 = await freePort();
  const again = await d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: 'fresh', Ports: [`${p2}:8080`] });
  assert.equal(again.status, 201, again.text);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/ping_test`), 'pong');
  assert.ok(bootedFrom(again.json.Id).includes('-incoming'), 'restored from a new snapshot');
  assert.notEqual(readFileSync(join(snaps, dir, 'state'), 'utf8'), 'not a migration stream');
  assert.equal((await d.api('DELETE', '/instances/fresh?force=true')).status, 204);
});

/** QEMU's argv of an instance's last start. */
const bootedFrom = (id: string): string[] => JSON.parse(readFileSync(join(d.home, 'instances', id, 'qemu.argv'), 'utf8')) as string[];

/** The pids of this home's spare supervisors (src/supervisor/spare.ts): their command line names the instances folder. */
function spares(): number[] {
  const want = `--spare\0${join(d.home, 'instances')}\0`;
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(want);
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('the next run takes a supervisor started ahead (a spare); a killed daemon leaves no spare behind, and its VMs are adopted', async () => {
  const spare = await waitFor('a spare supervisor, started after the first run', async () => spares()[0], 15_000);
  const p2 = await freePort();
  const r = await d.cli(['run', 'go-http', '--name', 'spared', '-p', `${p2}:8080`, '--env', 'KEY=spare']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/env_test`), 'spare');
  const inst = (await d.api('GET', '/instances/spared')).json;
  assert.equal(inst.Pid, spare, 'the spare supervises the new VM');
  const status = JSON.parse(readFileSync(join(d.home, 'instances', inst.Id, 'supervisor.json'), 'utf8'));
  assert.equal(status.pid, spare);
  assert.equal(status.state, 'running');
  // the next spare comes a little later; a daemon killed outright must not leave it waiting
  const next = await waitFor('the next spare', async () => spares().find((p) => p !== spare), 15_000);
  d.proc!.kill('SIGKILL');
  await waitFor('the spare to exit with its daemon', async () => (existsSync(`/proc/${next}`) && !/\) Z/.test(readFileSync(`/proc/${next}/stat`, 'utf8')) ? undefined : true), 5000);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/ping_test`), 'pong', 'the VM outlives the daemon');
  await d.start();
  const adopted = (await d.api('GET', '/instances/spared')).json;
  assert.equal(adopted.State, 'running');
  assert.equal(adopted.Pid, spare);
  const rm = await d.cli(['rm', '-f', 'spared']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(await refused(`http://127.0.0.1:${p2}/ping_test`));
});

test('a large environment (1.1 MB in all) reaches the app: env does not ride on the kernel command line', async () => {
  const big = (c: string) => c.repeat(100 * 1024);
  const env: Record<string, string> = { KEY: big('k') };
  for (let n = 0; n < 10; n++) env[`FILL_${n}`] = big(String(n));
  const p2 = await freePort();
  const r = await d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: 'bigenv', Env: env, Ports: [`${p2}:8080`], MemoryMb: 96 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.MemoryMb, 96);
  assert.equal(await httpUntil(`http://127.0.0.1:${p2}/env_test`), env.KEY);
  // too big for the serial line: a cold boot with the config in the initramfs
  assert.ok(!bootedFrom(r.json.Id).includes('-incoming'), 'a 1.1 MB config boots cold');
  assert.equal((await d.api('DELETE', '/instances/bigenv?force=true')).status, 204);
  // one entry over Linux's 128 KiB execve limit is refused before anything boots
  const tooBig = await d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: 'toobig', Env: { KEY: 'x'.repeat(130 * 1024) } });
  assert.equal(tooBig.status, 400);
  assert.match(tooBig.json.message, /Linux refuses any one entry over/);
  assert.equal((await d.api('GET', '/instances/toobig')).status, 404);
});

test('timers work in the guest: a 200 ms sleep takes about 200 ms', async () => {
  const t0 = Date.now();
  const slept = Number(await httpUntil(app('/sleep_test?ms=200')));
  const wall = Date.now() - t0;
  assert.ok(slept >= 200 && slept < 1500, `guest slept ${slept} ms`);
  assert.ok(wall < 3000, `the request took ${wall} ms`);
});

test('logs --follow streams a line the app prints while it runs', async () => {
  const ctl = new AbortController();
  const res = await fetch(`${d.url}/instances/web/logs?follow=true`, { signal: ctl.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  await httpUntil(app('/log_test?line=followed-line-42'));
  let seen = '';
  await waitFor('the followed line', async () => {
    const { value } = await reader.read();
    seen += Buffer.from(value ?? []).toString();
    return seen.includes('followed-line-42') ? true : undefined;
  }, 20_000);
  ctl.abort();
});

test('stop: state stopped and the port closed; start: it answers again', async () => {
  const stop = await d.cli(['stop', 'web']);
  assert.equal(stop.code, 0, stop.stderr);
  const inst = await d.api('GET', '/instances/web');
  assert.equal(inst.json.State, 'stopped');
  assert.equal(inst.json.ExitCode, 143, 'SIGTERM reached the app through the guest init');
  assert.ok(await refused(app('/ping_test')), 'the forwarded port is closed');
  const start = await d.cli(['start', 'web']);
  assert.equal(start.code, 0, start.stderr);
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  assert.equal(await httpUntil(app('/env_test')), 'VAL', 'env survives a restart');
});

test('a daemon restart keeps the image and adopts the running instance', async () => {
  await d.stop();
  assert.equal(await httpUntil(app('/ping_test')), 'pong', 'the VM outlives the daemon');
  await d.start();
  const images = await d.cli(['images', '--json']);
  assert.equal(JSON.parse(images.stdout)[0].Name, 'go-http');
  const inst = await d.api('GET', '/instances/web');
  assert.equal(inst.json.State, 'running');
  assert.equal(await httpUntil(app('/ping_test')), 'pong');
  const stop = await d.cli(['stop', 'web']);
  assert.equal(stop.code, 0, 'the adopted VM can be stopped');
  assert.ok(await refused(app('/ping_test')));
});

test('the app exit code is visible to the daemon', async () => {
  assert.equal((await d.cli(['start', 'web'])).code, 0);
  await httpUntil(app('/exit_test?code=7'));
  const inst = await waitFor('the instance to stop', async () => {
    const r = await d.api('GET', '/instances/web');
    return r.json.State === 'stopped' ? r.json : undefined;
  });
  assert.equal(inst.ExitCode, 7);
});

test('a VM that dies while the daemon is down is shown stopped, not running', async () => {
  assert.equal((await d.cli(['start', 'web'])).code, 0);
  await httpUntil(app('/ping_test'));
  const pid = (await d.api('GET', '/instances/web')).json.Pid as number;
  await d.stop();
  process.kill(pid, 'SIGKILL');
  await d.start();
  const inst = await d.api('GET', '/instances/web');
  assert.notEqual(inst.json.State, 'running');
  assert.equal(inst.json.Pid, null);
});

test('delete: refused while running without -f, then instance and image go', async () => {
  assert.equal((await d.cli(['start', 'web'])).code, 0);
  const rm = await d.cli(['rm', 'web']);
  assert.notEqual(rm.code, 0);
  assert.match(rm.stderr, /running|pending/);
  const pid = (await d.api('GET', '/instances/web')).json.Pid as number;
  assert.equal((await d.cli(['rm', '-f', 'web'])).code, 0);
  assert.equal((await d.api('GET', '/instances/web')).status, 404);
  await waitFor('the VM process to go', async () => (existsSync(`/proc/${pid}`) && !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) ? undefined : true), 5000);
  assert.equal((await d.cli(['rmu', 'go-http'])).code, 0);
  assert.deepEqual((await d.api('GET', '/images')).json, []);
});
