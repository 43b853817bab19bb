// Metrics and events with a real daemon, a real go-http unikernel and the real docker CLI:
// `curl /metrics` shows the build, the instance by state, its boot (restore or cold) and its
// memory; `docker events` shows create, start, die with the exit code and destroy, both
// replayed (--since/--until) and live; unik's own GET /events delivers while connected; a
// client that goes frees its listener; a cross-origin page gets none of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { suiteDaemon, ROOT, freePort, httpUntil, waitFor } from './harness.js';

let port = 0;
/** unix seconds, before the image was built */
let t0 = 0;
const d = suiteDaemon({
  setup: async () => {
    port = await freePort();
    t0 = Math.floor(Date.now() / 1000);
    const push = await d.cli(['push', 'evdemo', join(ROOT, 'examples/go-http')]);
    assert.equal(push.code, 0, push.stderr);
  },
});

function run(cmd: string, args: string[], timeoutS = 60): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('timeout', ['-s', 'KILL', String(timeoutS), cmd, ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
const docker = (args: string[]) => run('docker', ['-H', `tcp://127.0.0.1:${d.port}`, ...args]);
const curlMetrics = async () => {
  const r = await run('curl', ['-sS', '--fail', `${d.url}/metrics`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};
/** The value of one sample in the Prometheus text, or undefined. */
const sample = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};
const jsonLines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('curl /metrics after a build: the Prometheus text, the build by language, the image; docker events shows the build', async (t) => {
  const text = await curlMetrics();
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$/, line);
  assert.equal(sample(text, 'unik_image_build_duration_seconds_count{language="go"}'), 1);
  assert.ok(sample(text, 'unik_image_build_duration_seconds_sum{language="go"}')! > 0);
  assert.equal(sample(text, 'unik_images'), 1);
  assert.equal(sample(text, 'unik_instances{state="running"}'), 0);
  const r = await docker(['events', '--since', String(t0), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'type=image', '--format', '{{json .}}']);
  assert.equal(r.code, 0, r.stderr);
  const [build, ...more] = jsonLines(r.stdout);
  assert.deepEqual(more, []);
  assert.equal(build.Type, 'image');
  assert.equal(build.Action, 'build');
  assert.equal(build.Actor.Attributes.name, 'evdemo');
  assert.equal(build.Actor.Attributes.language, 'go');
  t.diagnostic(`docker events --filter type=image: ${r.stdout.trim()}`);
});

test('a run, stop and rm: live on both event streams, replayed by docker events in order, counted in /metrics; listeners freed', async (t) => {
  // unik's stream and a live `docker events`, connected before anything happens
  const unik = new AbortController();
  const unikLines: { Action: string; Name: string; Attributes: Record<string, string> }[] = [];
  const res = await fetch(`${d.url}/events?filters=${encodeURIComponent('{"type":["instance"]}')}`, { signal: unik.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const reading = (async () => {
    let buf = '';
    const dec = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      for (let at = buf.indexOf('\n'); at >= 0; at = buf.indexOf('\n')) {
        unikLines.push(JSON.parse(buf.slice(0, at)));
        buf = buf.slice(at + 1);
      }
    }
  })().catch(() => undefined);
  // not under timeout(1): killing that would leave the docker client connected
  const live = spawn('docker', ['-H', `tcp://127.0.0.1:${d.port}`, 'events', '--filter', 'type=container', '--format', '{{json .}}']);
  t.after(() => void live.kill('SIGKILL'));
  let liveOut = '';
  live.stdout.on('data', (b: Buffer) => (liveOut += b.toString()));
  const liveGone = new Promise((r) => live.on('exit', r));
  await waitFor('both event listeners', async () => (sample(await curlMetrics(), 'unik_event_listeners') === 2 ? true : undefined), 20_000);
  const info = await docker(['info', '--format', '{{.NEventsListener}}']);
  assert.equal(info.stdout.trim(), '2', info.stderr);

  const since = (Date.now() / 1000).toFixed(3);
  const r = await docker(['run', '-d', '--name', 'ev', '-p', `${port}:8080`, '--label', 'team=metrics', 'evdemo']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  // the live unik stream saw the instance come up while the client was connected
  await waitFor('the live ready event', async () => (unikLines.some((e) => e.Action === 'ready') ? true : undefined), 20_000);
  assert.deepEqual(unikLines.map((e) => `${e.Action} ${e.Name}`), ['create ev', 'start ev', 'ready ev']);
  const kind = unikLines[1]!.Attributes.boot!;
  assert.ok(kind === 'restore' || kind === 'cold', kind);
  if (process.env.UNIK_SNAPSHOTS !== '0') assert.equal(kind, 'restore', 'go-http fits a boot snapshot: its run is a restore');

  const running = await curlMetrics();
  assert.equal(sample(running, 'unik_instances{state="running"}'), 1);
  assert.equal(sample(running, `unik_instance_boot_duration_seconds_count{provider="qemu",kind="${kind}"}`), 1);
  assert.equal(sample(running, `unik_instance_boot_duration_seconds_count{provider="qemu",kind="${kind === 'restore' ? 'cold' : 'restore'}"}`), undefined);
  const boot = sample(running, `unik_instance_boot_duration_seconds_sum{provider="qemu",kind="${kind}"}`)!;
  assert.ok(boot > 0 && boot < 60, `boot ${boot} s`);
  assert.equal(Number(unikLines[2]!.Attributes.bootDuration).toFixed(3), boot.toFixed(3), 'the histogram holds the ready event\'s boot');
  const rss = sample(running, 'unik_instance_memory_rss_bytes{instance="ev",image="evdemo"}');
  assert.ok(rss !== undefined && rss > 8 * 1024 * 1024, `the VM's RSS: ${rss}`);
  t.diagnostic(running.split('\n').filter((l) => /^unik_(instances|instance_boot_duration_seconds_(count|sum)|instance_memory_rss_bytes|images|event_listeners)/.test(l)).join('\n'));

  assert.equal((await docker(['stop', 'ev'])).code, 0);
  assert.equal((await docker(['rm', 'ev'])).code, 0);
  const until = String(Math.ceil(Date.now() / 1000) + 1);

  // replayed: what happened to the container, in order, with the exit code
  const replay = await docker(['events', '--since', since, '--until', until, '--filter', 'type=container', '--format', '{{json .}}']);
  assert.equal(replay.code, 0, replay.stderr);
  const msgs = jsonLines(replay.stdout).filter((m) => m.Actor.ID === id);
  assert.deepEqual(msgs.map((m) => m.Action), ['create', 'start', 'ready', 'die', 'stop', 'destroy']);
  const die = msgs.find((m) => m.Action === 'die');
  assert.equal(die.Actor.Attributes.exitCode, '143', 'SIGTERM, as docker stop asks');
  for (const m of msgs) {
    assert.equal(m.Type, 'container');
    assert.equal(m.Actor.Attributes.name, 'ev');
    assert.equal(m.Actor.Attributes.image, 'evdemo');
    assert.equal(m.Actor.Attributes.team, 'metrics');
    assert.equal(m.status, m.Action);
    assert.equal(m.from, 'evdemo');
    assert.equal(m.scope, 'local');
    assert.ok(String(m.timeNano).startsWith(String(m.time)));
  }
  const text = await docker(['events', '--since', since, '--until', until, '--filter', `container=ev`, '--filter', 'event=die']);
  assert.match(text.stdout.trim(), new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z container die ${id} \\(execDuration=[\\d.]+, exitCode=143, image=evdemo, name=ev, team=metrics\\)$`));
  t.diagnostic(`docker events --since ${since} --until ${until}:\n${(await docker(['events', '--since', since, '--until', until])).stdout.trim()}`);

  // the live docker events saw the same, while connected
  await waitFor('the live destroy', async () => (liveOut.includes('"destroy"') ? true : undefined), 20_000);
  assert.deepEqual(jsonLines(liveOut).filter((m) => m.Actor.ID === id).map((m) => m.Action), ['create', 'start', 'ready', 'die', 'stop', 'destroy']);
  assert.deepEqual(unikLines.map((e) => e.Action), ['create', 'start', 'ready', 'die', 'stop', 'destroy']);

  const after = await curlMetrics();
  assert.equal(sample(after, 'unik_instances{state="running"}'), 0);
  assert.equal(sample(after, 'unik_events_total{type="instance",action="die"}'), 1);
  assert.equal(after.split('\n').filter((l) => l.startsWith('unik_instance_memory_rss_bytes{')).length, 0, 'no series for a VM that is gone');

  // clients that go free their listeners
  live.kill('SIGKILL');
  await liveGone;
  unik.abort();
  await reading;
  await waitFor('the listeners freed', async () => (sample(await curlMetrics(), 'unik_event_listeners') === 0 ? true : undefined), 20_000);
  assert.equal((await docker(['info', '--format', '{{.NEventsListener}}'])).stdout.trim(), '0');
});

test('the API latency histogram is by route template; a cross-origin request to /events or /metrics is refused', async () => {
  const refused = (path: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: d.port, path, headers: { host: `127.0.0.1:${d.port}`, ...headers } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.setTimeout(5000, () => req.destroy(new Error(`${path}: no answer (streaming to a foreign origin?)`)));
      req.end();
    });
  for (const path of ['/events', '/v1.43/events', '/metrics']) {
    for (const headers of [{ origin: 'http://evil.test' }, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
      const r = await refused(path, headers);
      assert.equal(r.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.doesNotMatch(r.body, /unik_|"Action"/);
    }
    const rebound = await refused(path, { host: `rebind.test:${d.port}` });
    assert.equal(rebound.status, 403);
  }
  const text = await curlMetrics();
  assert.ok(sample(text, 'unik_http_request_duration_seconds_count{method="POST",route="/vX.Y/containers/create",status="201"}')! >= 1);
  assert.ok(sample(text, 'unik_http_request_duration_seconds_count{method="POST",route="/images/:name/create",status="200"}')! >= 1);
  assert.doesNotMatch(text, /route="[^"]*(evdemo|ev\b)/, 'names never become label values of the latency histogram');
});
