// `unik doctor` through the real CLI and a real daemon: its answer matches this host (QEMU found
// where it is, the accelerator then the provider's own choice); a daemon whose PATH lacks QEMU
// says so with the apt-get line and the command fails; with no daemon the CLI runs the same
// checks itself and says how to start one. At most one probe guest boots (the accelerator's).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { HostCheckJson } from '../../src/api/types.js';
import { onPath } from '../../src/util/exec.js';
import { Daemon, suiteDaemon } from './harness.js';

const TOKEN = randomBytes(16).toString('hex');
const d = suiteDaemon();
// authentication on: the CLI sends the token from the same variable, a bare request has none
d.env.UNIK_API_TOKEN = TOKEN;
const emptyPath = mkdtempSync(join(tmpdir(), 'unik-doctor-path-'));
after(() => rmSync(emptyPath, { recursive: true, force: true }));

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const mark = (c: HostCheckJson) => (c.Ok ? '✓' : c.Required ? '✗' : '!');
function named(checks: HostCheckJson[], name: string): HostCheckJson {
  const c = checks.find((x) => x.Name === name);
  assert.ok(c, `no ${name} in ${checks.map((x) => x.Name).join(', ')}`);
  return c;
}

test("the daemon's answer is this host's: what is installed is ok, the accelerator is the provider's choice, the exit status follows", async () => {
  const r = await d.cli(['doctor', '--json'], { timeoutMs: 120_000 });
  const checks = JSON.parse(r.stdout) as HostCheckJson[];
  assert.equal(r.code, checks.some((c) => !c.Ok && c.Required) ? 1 : 0, r.stdout + r.stderr);
  assert.match(named(checks, 'daemon').Detail, new RegExp(`^127\\.0\\.0\\.1:${d.port} answered`));
  assert.equal(named(checks, 'qemu amd64').Ok, onPath('qemu-system-x86_64'));
  assert.equal(named(checks, 'kernel source').Ok, existsSync('/usr/src/linux-source-6.1.tar.xz'));
  assert.equal(named(checks, 'language go').Ok, onPath('go'));
  assert.equal(named(checks, 'image tools').Ok, onPath('musl-gcc') && onPath('zstd'));
  // the harness's daemons make no bridge on this host
  assert.deepEqual(named(checks, 'bridged networks'), { Name: 'bridged networks', Ok: false, Required: false, Detail: named(checks, 'bridged networks').Detail, Fix: 'start the daemon without UNIK_BRIDGED=off' });
  for (const c of checks) assert.equal(c.Ok ? c.Fix : 'has a fix', c.Ok ? '' : c.Fix && 'has a fix', `${c.Name}: ${c.Detail}`);

  // the accelerator it names is the one the QEMU provider now runs with, as `unik providers` says
  if (onPath('qemu-system-x86_64') && process.arch === 'x64') {
    const accel = named(checks, 'accelerator');
    if (!accel.Detail.startsWith('/dev/kvm is usable')) {
      const providers = JSON.parse((await d.cli(['providers', '--json'])).stdout) as { Name: string; Reason: string }[];
      assert.ok(providers.find((p) => p.Name === 'qemu')!.Reason.includes(`amd64: ${accel.Detail}`), JSON.stringify(providers));
    }
  }

  // the same, for a person: one line a check, its fix under it
  const text = await d.cli(['doctor'], { timeoutMs: 120_000 });
  assert.equal(text.code, r.code);
  for (const c of checks) {
    // the free space moves between the two calls
    const detail = c.Name === 'disk' ? '.*' : escape(c.Detail);
    assert.match(text.stdout, new RegExp(`^\\[${mark(c)}\\] ${escape(c.Name)} +${detail}$`, 'm'), `${c.Name} in:\n${text.stdout}`);
    if (!c.Ok) assert.match(text.stdout, new RegExp(`^ +fix: ${escape(c.Fix)}$`, 'm'));
  }
  assert.match(text.stdout, /\n(no problems found|\d+ problems?.*)\n/);
});

test('GET /doctor is guarded like every route: no token 401, a foreign page 403; no secret of the daemon in its answer', async () => {
  assert.equal((await d.api('GET', '/doctor')).status, 401);
  const page = await fetch(`${d.url}/doctor`, { headers: { authorization: `Bearer ${TOKEN}`, origin: 'http://evil.test' } });
  assert.equal(page.status, 403);
  const res = await fetch(`${d.url}/doctor`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(body.includes(TOKEN), false, 'the API token is not in the answer');
  assert.equal((await fetch(`${d.url}/doctor`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
});

test('a daemon whose PATH lacks QEMU says so with the apt-get line and fails; stopped, the CLI gives the same answer itself and how to start it', async () => {
  const bare = new Daemon();
  bare.env.PATH = emptyPath;
  try {
    await bare.start();
    const r = await bare.cli(['doctor'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^\[✓\] daemon /m);
    assert.match(r.stdout, /^\[✗\] qemu amd64 +qemu-system-x86_64 is not installed: amd64 images cannot run here\n +fix: apt-get install qemu-system-x86$/m);
    assert.match(r.stdout, /^\[✗\] kernel build tools +make, gcc, .* not installed/m);
    assert.match(r.stdout, /every missing package at once: apt-get install .*qemu-system-x86/);
    const fromDaemon = JSON.parse((await bare.cli(['doctor', '--json'])).stdout) as HostCheckJson[];

    await bare.stop();
    const local = await bare.cli(['doctor', '--json'], { timeoutMs: 60_000 });
    assert.equal(local.code, 1);
    const here = JSON.parse(local.stdout) as HostCheckJson[];
    const daemon = named(here, 'daemon');
    assert.equal(daemon.Ok, false);
    assert.match(daemon.Detail, new RegExp(`^not reachable at 127\\.0\\.0\\.1:${bare.port} \\(connection refused\\); the checks below ran here, in the CLI`));
    assert.match(daemon.Fix, new RegExp(`bin/unik daemon --port ${bare.port} &$`));
    // the same checks, the same verdicts, whoever runs them
    const verdicts = (cs: HostCheckJson[]) => cs.filter((c) => c.Name !== 'daemon').map((c) => `${c.Name} ${c.Ok} ${c.Required} ${c.Fix}`);
    assert.deepEqual(verdicts(here), verdicts(fromDaemon));
    const text = await bare.cli(['doctor']);
    assert.match(text.stdout, /^\[✗\] daemon +not reachable at .*\n +fix: .*daemon --port \d+ &$/m);
  } finally {
    await bare.destroy();
  }
});
