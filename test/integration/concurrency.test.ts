// Operations that race on one instance, for real: racing starts, a stop during a start, an rm
// during a run, and a supervisor killed from outside. One operation at a time per instance
// (core/instances.ts) and one supervisor per VM (src/supervisor) keep each outcome whole:
// never two VMs for one instance, never a VM without a record, never a state that lies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suiteDaemon, ROOT, freePort, httpUntil, refused, waitFor } from './harness.js';

const d = suiteDaemon({
  setup: async (d) => {
    const r = await d.cli(['push', 'go-http', join(ROOT, 'examples/go-http')]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  },
});

/** The QEMU processes of an instance (not their wrappers): argv[0] is QEMU, `-name unik-NAME`. */
function vmsOf(name: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.includes('qemu-system') && argv.includes(`unik-${name}`)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

const state = async (name: string) => (await d.api('GET', `/instances/${name}`)).json?.State as string | undefined;

async function runOne(name: string): Promise<{ id: string; port: number }> {
  const port = await freePort();
  const r = await d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: name, Ports: [`${port}:8080`] });
  assert.equal(r.status, 201, r.text);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  return { id: r.json.Id, port };
}

test('racing starts of one stopped instance boot one VM, and every caller sees it running', async () => {
  const { port } = await runOne('race');
  assert.equal((await d.api('POST', '/instances/race/stop')).status, 200);
  assert.deepEqual(vmsOf('race'), []);
  const answers = await Promise.all([1, 2, 3, 4].map(() => d.api('POST', '/instances/race/start')));
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200], answers.map((a) => a.text).join('\n'));
  assert.equal(vmsOf('race').length, 1, 'one VM for one instance');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(await state('race'), 'running');
  assert.equal((await d.api('DELETE', '/instances/race?force=true')).status, 204);
  assert.deepEqual(vmsOf('race'), []);
});

test('a stop sent while a start is under way waits for it, then stops the VM: stopped, no VM, the port closed', async () => {
  const { port } = await runOne('stopstart');
  assert.equal((await d.api('POST', '/instances/stopstart/stop')).status, 200);
  const starting = d.api('POST', '/instances/stopstart/start');
  // the start records `pending` before its VM boots
  for (let i = 0; i < 500 && (await state('stopstart')) === 'stopped'; i++) await sleep(10);
  const stopping = d.api('POST', '/instances/stopstart/stop?timeout=0');
  const [a, b] = await Promise.all([starting, stopping]);
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  assert.equal(await state('stopstart'), 'stopped');
  assert.deepEqual(vmsOf('stopstart'), []);
  assert.ok(await refused(`http://127.0.0.1:${port}/ping_test`), 'the port is closed');
  assert.equal((await d.api('DELETE', '/instances/stopstart')).status, 204);
});

test('an rm sent while the run is booting waits for it, then removes VM, record and files', async () => {
  const port = await freePort();
  const running = d.api('POST', '/instances/run', { ImageName: 'go-http', InstanceName: 'doomed', Ports: [`${port}:8080`] });
  // the record is written before the VM starts: the rm finds it at once
  const id = await waitFor('the record of the run', async () => (await d.api('GET', '/instances/doomed')).json?.Id as string | undefined, 30_000);
  const removed = await d.api('DELETE', '/instances/doomed?force=true');
  const ran = await running;
  assert.equal(ran.status, 201, ran.text);
  assert.equal(removed.status, 204, removed.text);
  assert.equal((await d.api('GET', '/instances/doomed')).status, 404);
  assert.deepEqual(vmsOf('doomed'), []);
  assert.ok(!existsSync(join(d.home, 'instances', id)), 'its folder is gone');
  assert.ok(await refused(`http://127.0.0.1:${port}/ping_test`));
});

test('a supervisor killed from outside takes its VM with it; the instance is shown ended, and starts again', async () => {
  const { id, port } = await runOne('orphan');
  const sup = JSON.parse(readFileSync(join(d.home, 'instances', id, 'supervisor.json'), 'utf8')) as { pid: number; qemuPid: number; state: string };
  assert.equal(sup.state, 'running');
  assert.equal((await d.api('GET', '/instances/orphan')).json.Pid, sup.pid, 'the instance pid is its supervisor');
  process.kill(sup.pid, 'SIGKILL');
  await waitFor('its QEMU to die with it', async () => (vmsOf('orphan').length === 0 ? true : undefined), 5000);
  const shown = await waitFor('the instance to be shown ended', async () => {
    const s = await state('orphan');
    return s === 'stopped' || s === 'error' ? s : undefined;
  }, 5000);
  assert.ok(shown);
  assert.ok(await refused(`http://127.0.0.1:${port}/ping_test`), 'its port was freed');
  assert.equal((await d.api('POST', '/instances/orphan/start')).status, 200);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(vmsOf('orphan').length, 1);
  assert.equal((await d.api('DELETE', '/instances/orphan?force=true')).status, 204);
});
