// podman's Docker API as an oracle: the same read-only docker commands against podman and
// against unik; every field the CLI prints that podman fills, unik must fill too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Daemon, ROOT, freePort } from './harness.js';
import { Podman } from './podman.js';

const d = new Daemon();
const pm = new Podman();

function docker(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('timeout', ['-s', 'KILL', '60', 'docker', '-H', `tcp://127.0.0.1:${port}`, ...args], (err, stdout, stderr) => (err ? reject(new Error(`docker ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
  });
}

before(async () => {
  await pm.start();
  await d.start();
  assert.equal((await d.cli(['push', 'gohttp', join(ROOT, 'examples/go-http')])).code, 0);
  const port = await freePort();
  await docker(pm.port, ['create', '--name', 'web', '-p', `${port}:8080`, '-e', 'KEY=VAL', 'localhost/gohttp']);
  await docker(d.port, ['create', '--name', 'web', '-p', `${port}:8080`, '-e', 'KEY=VAL', 'gohttp']);
});
after(async () => {
  await pm.destroy();
  await d.destroy();
});

const empty = (v: unknown) => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);

/** Keys podman fills (recursively, within the named sections) that unik leaves out or empty. */
function missing(oracle: Record<string, unknown>, ours: Record<string, unknown>, path = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(oracle)) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in ours)) out.push(p);
    else if (!empty(v) && empty(ours[k])) out.push(`${p} (empty)`);
  }
  return out;
}

type Row = Record<string, unknown>;
const formatted = async (port: number, args: string[]) => JSON.parse((await docker(port, [...args, '--format', '{{json .}}'])).trim().split('\n')[0]!) as Record<string, unknown>;

test('docker version: the server fields podman gives, unik gives', async () => {
  const [p, u] = await Promise.all([pm.port, d.port].map((port) => docker(port, ['version', '--format', '{{json .Server}}']).then((s) => JSON.parse(s))));
  assert.deepEqual(missing(p, u), []);
});

test('docker ps -a: every column podman fills, unik fills', async () => {
  const [p, u] = (await Promise.all([pm.port, d.port].map((port) => formatted(port, ['ps', '-a'])))) as [Row, Row];
  assert.deepEqual(missing(p, u), []);
  assert.equal(u.Names, 'web');
  assert.equal(u.State, 'created');
  assert.equal(u.Status, p.Status, 'both say Created');
});

test('docker images: every column podman fills, unik fills', async () => {
  const [p, u] = (await Promise.all([pm.port, d.port].map((port) => formatted(port, ['images'])))) as [Row, Row];
  assert.deepEqual(missing(p, u), []);
});

test('docker inspect: the fields podman gives (top level, State, Config, NetworkSettings), unik gives', async () => {
  const [p, u] = await Promise.all([pm.port, d.port].map((port) => docker(port, ['inspect', 'web']).then((s) => JSON.parse(s)[0])));
  const gaps = [
    ...missing(p, u).filter((k) => !['State', 'Config', 'NetworkSettings', 'HostConfig'].includes(k)),
    ...missing(p.State, u.State, 'State'),
    ...missing(p.Config, u.Config, 'Config'),
    ...missing(p.NetworkSettings, u.NetworkSettings, 'NetworkSettings'),
  ];
  // Where podman parts from Docker's own model, not from unik's: Docker omits State.Health for a
  // container without a health check (podman always sends one), and unik's app is the image's
  // entrypoint, so Args and Config.Cmd hold only extra arguments (podman's import puts the
  // program there).
  const podmanOnly = ['State.Health', 'Args (empty)', 'Config.Cmd (empty)'];
  assert.deepEqual(gaps.filter((g) => !podmanOnly.includes(g)), []);
  for (const k of ['Binds', 'NetworkMode', 'PortBindings', 'RestartPolicy', 'AutoRemove', 'Memory']) assert.ok(k in u.HostConfig, `HostConfig.${k}`);
  // same port; unik binds 127.0.0.1 when no host IP is given (podman and Docker: every interface)
  const ports = (x: { HostConfig: { PortBindings: Record<string, { HostPort: string }[]> } }) => JSON.stringify(Object.entries(x.HostConfig.PortBindings).map(([k, v]) => [k, v.map((b) => b.HostPort)]));
  assert.equal(ports(u), ports(p));
  assert.equal(u.HostConfig.PortBindings['8080/tcp'][0].HostIp, '127.0.0.1');
});
