// The build sandbox: an unprivileged user, no network, nothing of the host but the system dirs
// and the folders given, a time limit and a memory limit. Needs root and bubblewrap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countingServer } from '../integration/counting-server.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildUser, handToBuildUser, sandboxed } from '../../src/util/sandbox.js';

const base = mkdtempSync(join(tmpdir(), 'unik-sbx-'));
const work = join(base, 'work');
const outside = join(base, 'outside');
mkdirSync(work);
mkdirSync(outside);
const canary = `canary-${Math.random().toString(36).slice(2)}`;
const secretText = `secret-${Math.random().toString(36).slice(2)}`;
writeFileSync(join(outside, 'secret'), secretText);
await handToBuildUser([work]);
const run = (cmd: string, opts: { timeoutSec?: number; memoryMb?: number } = {}) => sandboxed('bash', ['-c', cmd], { cwd: work, writable: [work], ...opts });

test('the command runs as the build user, without capabilities, in its own pid namespace', async () => {
  const r = await run('id -u; grep CapEff /proc/self/status; ps -e --no-headers | wc -l');
  assert.equal(r.code, 0, r.output);
  const [uid, caps, procs] = r.output.trim().split('\n');
  assert.equal(Number(uid), buildUser().uid);
  assert.notEqual(Number(uid), 0);
  assert.match(caps!, /CapEff:\s+0+$/);
  assert.ok(Number(procs) <= 4, `only the sandbox's own processes are visible: ${procs}`);
});

test('it sees nothing of the host but the system dirs and its folders, and writes only there', async () => {
  const r = await run(`cat ${join(outside, 'secret')}; cat /etc/shadow; ls /root; ls ${base}; echo made > ${work}/made; echo x > /tmp/${canary}; echo x > ${outside}/${canary}`);
  assert.ok(!r.output.includes(secretText), 'the secret was not read');
  assert.match(r.output, /shadow: No such file/);
  assert.equal(readFileSync(join(work, 'made'), 'utf8'), 'made\n');
  assert.equal(existsSync(`/tmp/${canary}`), false, 'its /tmp is private');
  assert.equal(existsSync(join(outside, canary)), false);
});

test('it has no network: a server on the host loopback gets no connection', async () => {
  const srv = await countingServer();
  const port = srv.port;
  try {
    const r = await run(`echo hello > /dev/tcp/127.0.0.1/${port} && echo CONNECTED`);
    assert.doesNotMatch(r.output, /CONNECTED/);
    assert.notEqual(r.code, 0);
    assert.equal(srv.connections(), 0);
  } finally {
    srv.close();
  }
});

test('a run past its time limit is stopped, with everything it started', async () => {
  const started = Date.now();
  const marker = `${30 + Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1000)}`;
  const e = await run(`sleep ${marker} & sleep ${marker}`, { timeoutSec: 1 }).then(() => undefined, (x: Error & { code: string }) => x);
  assert.equal(e?.code, 'UNIK_ERR_BUILD_TIMEOUT');
  assert.match(e!.message, /longer than its limit of 1 s/);
  assert.ok(Date.now() - started < 5000);
  await new Promise((r) => setTimeout(r, 300));
  const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`sleep ${marker}`));
  assert.deepEqual(left, [], 'no process of the sandbox outlives it');
});

test('a run past its memory limit is killed with a clear error; one within it is not', async () => {
  const hog = `python3 -c "x = bytearray(400 * 1024 * 1024); print(len(x))"`;
  const e = await run(hog, { memoryMb: 96 }).then(() => undefined, (x: Error & { code: string }) => x);
  assert.equal(e?.code, 'UNIK_ERR_BUILD_OUT_OF_MEMORY', String(e));
  assert.match(e!.message, /memory limit of 96 MB/);
  const ok = await run(`python3 -c "x = bytearray(16 * 1024 * 1024); print(len(x))"`, { memoryMb: 96 });
  assert.equal(ok.code, 0, ok.output);
});

test('a fork bomb is stopped at the process limit with a clear error, and leaves nothing behind', async () => {
  const marker = `${300 + Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1000)}`;
  const lines: string[] = [];
  // dash: a fork it is refused ends the loop at once (bash would retry for a while)
  const bomb = `i=0; while [ $i -lt 2000 ]; do sleep ${marker} & i=$((i+1)); echo started $i; done; echo ALL`;
  const started = Date.now();
  const e = await sandboxed('sh', ['-c', bomb], { cwd: work, writable: [work], pids: 64, timeoutSec: 20, onLine: (l) => lines.push(l) }).then(
    (r) => Object.assign(new Error(`ran to its end: ${r.code} ${r.output.slice(-300)}`), { code: 'NONE' }),
    (x: Error & { code: string }) => x,
  );
  assert.ok(!lines.includes('ALL'), 'the loop did not start all 2000');
  const most = Math.max(0, ...lines.map((l) => Number(/^started (\d+)$/.exec(l)?.[1] ?? 0)));
  assert.ok(most < 64, `at most the limit started: ${most}`);
  assert.equal(e.code, 'UNIK_ERR_BUILD_TOO_MANY_PROCESSES', String(e));
  assert.match(e.message, /limit of 64 processes/);
  assert.ok(Date.now() - started < 15000, 'stopped by the limit, not the clock');
  await new Promise((r) => setTimeout(r, 300));
  const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`sleep ${marker}`));
  assert.deepEqual(left, [], 'no process of the sandbox outlives it');
});

test('its /tmp is bounded: writing 2 GB there fails, and nothing is left', async () => {
  const r = await sandboxed('sh', ['-c', 'head -c 2000000000 /dev/zero > /tmp/big; echo "code $?"; ls -l /tmp/big'], { cwd: work, writable: [work], tmpMb: 8 });
  assert.match(r.output, /No space left on device/);
  assert.match(r.output, /code [1-9]/);
  const size = Number(/ (\d+) [A-Z][a-z]{2} /.exec(r.output)?.[1]);
  assert.ok(size <= 8 * 1024 * 1024, `the file stopped at the limit: ${size}`);
  // the default is a bounded tmpfs too
  const d = await sandboxed('sh', ['-c', "df -k /tmp | tail -1 | awk '{print $2}'"], { cwd: work, writable: [work] });
  assert.equal(Number(d.output.trim()), 1024 * 1024, d.output);
});

test('without bubblewrap a build is refused (503), never run unconfined', async () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    const e = await run(`touch ${work}/unconfined`).then(() => undefined, (x: Error & { code: string; kind: string; hint: string }) => x);
    assert.equal(e?.code, 'UNIK_ERR_NO_SANDBOX');
    assert.equal(e?.kind, 'Unavailable');
    assert.match(e!.hint, /apt-get install bubblewrap/);
    assert.equal(existsSync(join(work, 'unconfined')), false);
  } finally {
    process.env.PATH = path;
  }
});

test('the sandbox is cheap: one `true` costs well under a second', async () => {
  const n = 5;
  const t = Date.now();
  for (let i = 0; i < n; i++) assert.equal((await sandboxed('true', [], { cwd: work, writable: [work] })).code, 0);
  const each = (Date.now() - t) / n;
  console.log(`# sandbox overhead: ${each.toFixed(0)} ms per run`);
  assert.ok(each < 1000);
});
