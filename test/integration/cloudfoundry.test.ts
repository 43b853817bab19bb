// Cloud Foundry: the unik buildpack (integrations/cloudfoundry) staged and launched the way CF's
// buildpack lifecycle does it. No Cloud Foundry can run here, so the test is the lifecycle: the
// same directories, arguments, order, environment and droplet layout, each step in a bubblewrap
// container (uid 2000 "vcap", the host's /usr and /etc read-only, the host's node hidden, the unik
// checkout out of sight), against a real daemon, with a real unikernel answering on $PORT.
//
// What CF does, and where that is written (read for this test; cited, not copied):
// - The builder, code.cloudfoundry.org/buildpackapplifecycle (builder_config.go,
//   buildpackrunner/runner.go, runner_unix.go): the app's bits in /tmp/app (BUILD_DIR); each
//   buildpack unzipped in /tmp/buildpacks/<a hash of its name>; the final buildpack's cache
//   /tmp/cache/final; a fresh /tmp/contentsNNN holding deps/<IDX> and profile.d/. With detection,
//   `bin/detect BUILD_DIR` runs for each buildpack in order and the first to exit 0 is chosen, its
//   stdout (trimmed) the detected name. Then, the buildpack having bin/finalize:
//   `bin/supply BUILD_DIR CACHE_DIR DEPS_DIR IDX`, `bin/finalize BUILD_DIR CACHE_DIR DEPS_DIR IDX
//   PROFILE_DIR`, and `bin/release BUILD_DIR`, whose stdout is YAML with default_process_types
//   (a Procfile would override it). IDX is zero-padded to the number of buildpacks: "0" for one.
//   The droplet is `tar -czf` of contents/: app/ (`cp -a BUILD_DIR`), deps/, profile.d/, tmp/,
//   logs/ and staging_info.yml ({"detected_buildpack", "start_command"}).
// - The buildpack docs (cloudfoundry/docs-buildpacks, understand-buildpacks and custom: "Core
//   Buildpack Communication Contract"): detect exits 0 and prints a name; supply must not modify
//   anything outside deps/IDX; deps/IDX/config.yml holds `name:` and `config:`; profile.d scripts
//   are sourced before launch; release's `web` command runs as `bash -c COMMAND`; the droplet is
//   extracted into /home/vcap (app/, deps/, …). The docs give finalize four arguments; the
//   lifecycle's code passes PROFILE_DIR as a fifth: the buildpack takes both.
// - The environment (cloudfoundry/docs-dev-guide, deploy-apps/environment-variable): staging has
//   CF_STACK, VCAP_APPLICATION, VCAP_SERVICES, MEMORY_LIMIT, CF_INSTANCE_ADDR/IP/INTERNAL_IP/PORT/
//   PORTS, HOME, LANG, PATH, USER (vcap); running has PORT, CF_INSTANCE_GUID/INDEX,
//   INSTANCE_GUID/INDEX, TMPDIR, VCAP_APP_HOST/PORT, HOME=/home/vcap/app, but not CF_STACK.
// - The launcher (buildpackapplifecycle launcher/main.go, env/env.go, launcher_unix.go): HOME is
//   the app dir, TMPDIR ../tmp, DEPS_DIR ../deps; VCAP_APPLICATION gets host 0.0.0.0, port $PORT,
//   instance_id and instance_index; then bash: cd the app dir, source ../profile.d/*,
//   .profile.d/* and .profile, and exec `bash -c START_COMMAND`.
// - Stopping (docs-dev-guide, deploy-apps/app-lifecycle): SIGTERM to the app's process, SIGKILL
//   ten seconds later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { suiteDaemon, ROOT, freePort, httpUntil, refused, waitFor } from './harness.js';

const TOKEN = randomBytes(24).toString('hex');
const d = suiteDaemon({ teardown: () => rmSync(T, { recursive: true, force: true }) });
// the daemon asks every client for the token: the buildpack has it only from the bound service
d.env.UNIK_API_TOKEN = TOKEN;

const T = mkdtempSync(join(tmpdir(), 'unik-cf-'));
/** the packaged buildpack, unzipped as CF does; seen in each staging container at BP */
const BUILDPACK = join(T, 'buildpack');
const BP = `/tmp/buildpacks/${createHash('md5').update('unik_buildpack').digest('hex')}`;
const HOSTILE_NAME = "web$(touch /tmp/pwned)`touch /tmp/pwned`;touch /tmp/pwned #'\"";
const SECRET = `host-secret-${randomBytes(16).toString('hex')}`;

async function api(method: string, path: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(d.url + path, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, text };
}

/** The bound service a `cf create-user-provided-service unik -p '{"host":…,"api_token":…}'` makes. */
const vcapServices = () => JSON.stringify({ 'user-provided': [{ name: 'unik', label: 'user-provided', tags: [], instance_name: 'unik', binding_name: null, credentials: { host: `127.0.0.1:${d.port}`, api_token: TOKEN }, syslog_drain_url: '', volume_mounts: [] }] });

const vcapApplication = (name: string) => ({
  application_id: 'fa05c1a9-0fc1-4fbd-bae1-139850dec7a3',
  application_name: name,
  application_uris: ['web.example.com'],
  application_version: 'fb8fbcc6-8d58-479e-bcc7-3b4ce5a7f0ca',
  cf_api: 'https://api.example.com',
  limits: { disk: 1024, fds: 16384, mem: 128 },
  name,
  organization_id: 'c0134bad-97a9-468d-ab9d-e97547e3aed5',
  organization_name: 'org',
  space_id: '06450c72-4669-4dc6-8096-45f9777db68a',
  space_name: 'space',
  uris: ['web.example.com'],
  users: null,
  version: 'fb8fbcc6-8d58-479e-bcc7-3b4ce5a7f0ca',
});

/** What a staging container's environment holds (docs-dev-guide's table, staging column). */
const stagingEnv = (name: string): Record<string, string> => ({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/home/vcap',
  USER: 'vcap',
  LANG: 'en_US.UTF-8',
  CF_STACK: 'cflinuxfs4',
  MEMORY_LIMIT: '128m',
  CF_INSTANCE_ADDR: '',
  CF_INSTANCE_IP: '10.0.16.5',
  CF_INSTANCE_INTERNAL_IP: '10.255.0.7',
  CF_INSTANCE_PORT: '',
  CF_INSTANCE_PORTS: '[]',
  VCAP_APPLICATION: JSON.stringify(vcapApplication(name)),
  VCAP_SERVICES: vcapServices(),
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** bubblewrap: a container as CF's (user vcap, the stack's /usr and /etc read-only, the host's node hidden) with `binds` [host, inside]. */
function container(binds: [string, string, 'ro'?][], env: Record<string, string>, cwd: string, argv: string[]): ChildProcess {
  const args = [
    '--die-with-parent', '--unshare-user', '--uid', '2000', '--gid', '2000',
    '--ro-bind', '/usr', '/usr', '--ro-bind', '/dev/null', '/usr/bin/node',
    '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/sbin', '/sbin',
    '--ro-bind', '/etc', '/etc', '--proc', '/proc', '--dev', '/dev', '--dir', '/home/vcap',
    ...binds.flatMap(([from, to, ro]) => [ro ? '--ro-bind' : '--bind', from, to]),
    '--clearenv', ...Object.entries(env).flatMap(([k, v]) => ['--setenv', k, v]),
    '--chdir', cwd, '--', ...argv,
  ];
  return spawn('bwrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(p: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (b: Buffer) => (stdout += b));
  p.stderr!.on('data', (b: Buffer) => (stderr += b));
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, stdout, stderr })));
}

interface Staging {
  /** the staging container's /tmp, on the host */
  tmp: string;
  contents: string;
  /** BUILD_DIR before detect and after supply (supply must change nothing outside deps/IDX) */
  appBefore: string;
  appAfterSupply?: string;
  detect?: Result;
  supply?: Result;
  finalize?: Result;
  release?: Result;
}

/**
 * One staging, as the builder runs it: the app's bits into /tmp/app, then detect, supply,
 * finalize (with PROFILE_DIR unless `noProfileDir`), release, stopping at the first failure.
 */
async function stage(app: string, env: Record<string, string>, opts: { noProfileDir?: boolean; prepare?: (tmp: string) => void } = {}): Promise<Staging> {
  const tmp = mkdtempSync(join(T, 'staging-'));
  const contentsName = `contents${Math.floor(Math.random() * 1e9)}`;
  cpSync(app, join(tmp, 'app'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(tmp, 'cache', 'final'), { recursive: true });
  mkdirSync(join(tmp, contentsName, 'deps', '0'), { recursive: true });
  mkdirSync(join(tmp, contentsName, 'profile.d'));
  mkdirSync(join(tmp, 'buildpacks'));
  opts.prepare?.(tmp);
  const s: Staging = { tmp, contents: join(tmp, contentsName), appBefore: snapshot(join(tmp, 'app')) };
  const binds: [string, string, 'ro'?][] = [[tmp, '/tmp'], [BUILDPACK, BP, 'ro']];
  const run = (argv: string[]) => finished(container(binds, env, '/home/vcap', argv));
  const deps = `/tmp/${contentsName}/deps`;
  s.detect = await run([`${BP}/bin/detect`, '/tmp/app']);
  if (s.detect.code !== 0) return s;
  s.supply = await run([`${BP}/bin/supply`, '/tmp/app', '/tmp/cache/final', deps, '0']);
  s.appAfterSupply = snapshot(join(tmp, 'app'));
  if (s.supply.code !== 0) return s;
  s.finalize = await run([`${BP}/bin/finalize`, '/tmp/app', '/tmp/cache/final', deps, '0', ...(opts.noProfileDir ? [] : [`/tmp/${contentsName}/profile.d`])]);
  if (s.finalize.code !== 0) return s;
  s.release = await run([`${BP}/bin/release`, '/tmp/app']);
  return s;
}

/** Every file under a folder whose bytes hold `needle` (links are not followed). */
function filesHolding(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const f = join(p, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.isFile() && readFileSync(f).includes(needle)) hits.push(f);
    }
  };
  walk(dir);
  return hits;
}

/** A folder's files and links with their contents: to prove a step left it as it was. */
function snapshot(dir: string): string {
  return execFileSync('bash', ['-c', 'cd "$1" && find . -printf "%p %y %m %l\\n" | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum', 'snapshot', dir], { encoding: 'utf8' });
}

let staged: Staging;
const home = join(T, 'home-vcap');

test('the buildpack is packaged, zipped and unzipped as an operator and CF would, and holds all it runs', { timeout: 120_000 }, () => {
  const out = join(T, 'packaged');
  execFileSync(join(ROOT, 'integrations/cloudfoundry/bin/unik-buildpack'), ['package', out], { stdio: 'pipe' });
  execFileSync('zip', ['-qr', join(T, 'unik_buildpack.zip'), '.'], { cwd: out });
  execFileSync('unzip', ['-q', join(T, 'unik_buildpack.zip'), '-d', BUILDPACK]);
  for (const s of ['detect', 'supply', 'finalize', 'release']) assert.ok(existsSync(join(BUILDPACK, 'bin', s)), `bin/${s}`);
  assert.equal(execFileSync(join(BUILDPACK, 'node'), ['-e', 'process.stdout.write(process.version)'], { encoding: 'utf8' }), process.version);
  rmSync(out, { recursive: true });
});

test('detect exits 1 on a folder unik cannot build, and prints nothing', { timeout: 60_000 }, async () => {
  const app = join(T, 'not-an-app');
  mkdirSync(app);
  writeFileSync(join(app, 'README.txt'), 'just text\n');
  const s = await stage(app, stagingEnv('text'));
  assert.equal(s.detect!.code, 1, s.detect!.stderr);
  assert.equal(s.detect!.stdout, '');
  assert.equal(s.supply, undefined, 'the lifecycle stops: no buildpack detected');
});

test('staging: detect → supply → finalize → release build the Go example on the daemon; no shell sees the app name, no token enters the droplet', { timeout: 600_000 }, async () => {
  staged = await stage(join(ROOT, 'examples/go-http'), stagingEnv(HOSTILE_NAME));
  const s = staged;
  assert.equal(s.detect!.code, 0, s.detect!.stderr);
  assert.equal(s.detect!.stdout.trim(), 'unik-go');
  assert.equal(s.supply!.code, 0, s.supply!.stderr + s.supply!.stdout);
  assert.equal(s.appAfterSupply, s.appBefore, 'supply changed nothing in BUILD_DIR');
  const deps0 = join(s.contents, 'deps', '0');
  for (const f of ['node', 'bin/unik-cf-launch', 'config.yml', 'lib/package.json']) assert.ok(existsSync(join(deps0, f)), `deps/0/${f}`);
  assert.equal(parse(readFileSync(join(deps0, 'config.yml'), 'utf8')).name, 'unik');
  assert.equal(s.finalize!.code, 0, s.finalize!.stderr + s.finalize!.stdout);
  assert.match(s.finalize!.stdout, /-----> unik buildpack: building/);
  assert.equal(s.release!.code, 0, s.release!.stderr);
  const release = parse(s.release!.stdout) as { default_process_types: { web: string } };
  assert.equal(release.default_process_types.web, 'unik-cf-launch');

  // the image: named from VCAP_APPLICATION, cut to the daemon's alphabet, plus a digest of the source
  const images = (await api('GET', '/images')).json as { Name: string; Language: string }[];
  assert.equal(images.length, 1);
  assert.match(images[0]!.Name, /^web-touch-tmp-pwned-touch-tmp-pwned-touch-tmp-pwned-[0-9a-f]{12}$/);
  assert.equal(images[0]!.Language, 'go');
  const launch = JSON.parse(readFileSync(join(deps0, 'launch.json'), 'utf8'));
  assert.deepEqual(launch, { image: images[0]!.Name, daemon: `http://127.0.0.1:${d.port}`, app: HOSTILE_NAME, appPort: 8080 });
  assert.match(readFileSync(join(s.contents, 'profile.d', 'unik.sh'), 'utf8'), /^export PATH="\$DEPS_DIR\/0\/bin:\$PATH"$/m);

  // staging again with the same source finds the image: one per app and source
  const again = await stage(join(ROOT, 'examples/go-http'), stagingEnv(HOSTILE_NAME));
  assert.equal(again.finalize!.code, 0, again.finalize!.stderr);
  assert.match(again.finalize!.stdout, /is on the daemon already/);
  assert.equal((await api('GET', '/images')).json.length, 1);

  // the builder's droplet: contents/ with app/ (cp -a BUILD_DIR), tmp/, logs/, staging_info.yml; tar -czf
  execFileSync('cp', ['-a', join(s.tmp, 'app'), join(s.contents, 'app')]);
  mkdirSync(join(s.contents, 'tmp'));
  mkdirSync(join(s.contents, 'logs'));
  writeFileSync(join(s.contents, 'staging_info.yml'), JSON.stringify({ detected_buildpack: s.detect!.stdout.trim(), start_command: release.default_process_types.web }));
  execFileSync('tar', ['-czf', join(T, 'droplet.tgz'), '-C', s.contents, '.']);
  mkdirSync(home);
  execFileSync('tar', ['-xzf', join(T, 'droplet.tgz'), '-C', home]);

  assert.deepEqual(filesHolding(home, TOKEN), [], 'the droplet holds no token');
  assert.ok(!`${s.supply!.stdout}${s.supply!.stderr}${s.finalize!.stdout}${s.finalize!.stderr}`.includes(TOKEN), 'no token in the staging log');
  assert.ok(!existsSync(join(s.tmp, 'pwned')) && !existsSync(join(again.tmp, 'pwned')) && !existsSync('/tmp/pwned'), 'the app name reached no shell');
});

/** The running environment: what Diego sets, then what the lifecycle's launcher adds (HOME, TMPDIR, DEPS_DIR, VCAP_APPLICATION's host, port and instance). */
function runningEnv(port: number, guid: string): Record<string, string> {
  const { CF_STACK: _staging, ...env } = stagingEnv(HOSTILE_NAME);
  return {
    ...env,
    HOME: '/home/vcap/app',
    TMPDIR: '/home/vcap/tmp',
    DEPS_DIR: '/home/vcap/deps',
    PORT: String(port),
    VCAP_APP_PORT: String(port),
    VCAP_APP_HOST: '0.0.0.0',
    CF_INSTANCE_GUID: guid,
    INSTANCE_GUID: guid,
    CF_INSTANCE_INDEX: '0',
    INSTANCE_INDEX: '0',
    CF_INSTANCE_PORT: '61001',
    CF_INSTANCE_ADDR: '10.0.16.5:61001',
    CF_INSTANCE_PORTS: JSON.stringify([{ external: 61001, internal: port }]),
    VCAP_APPLICATION: JSON.stringify({ ...vcapApplication(HOSTILE_NAME), host: '0.0.0.0', port, instance_id: guid, instance_index: 0 }),
    KEY: 'from-cf',
  };
}

// the lifecycle's launcher, in this test's words: cd the app dir, source the profile scripts, exec the start command
const LAUNCHER = 'cd "$1"; for f in ../profile.d/* .profile.d/*; do [ -f "$f" ] && source "$f"; done; [ -f .profile ] && source .profile; shift; exec bash -c "$@"';

interface Launched {
  p: ChildProcess;
  done: Promise<Result>;
  port: number;
  guid: string;
  tmp: string;
}

/** Starts the droplet's web process in an app container (the droplet at /home/vcap) and waits for pong on $PORT. */
async function launch(): Promise<Launched> {
  assert.ok(staged?.release, 'staged');
  const port = await freePort();
  const guid = randomUUID();
  const tmp = mkdtempSync(join(T, 'launch-tmp-'));
  const web = parse(staged.release!.stdout).default_process_types.web as string;
  const p = container([[home, '/home/vcap'], [tmp, '/tmp']], runningEnv(port, guid), '/home/vcap', ['bash', '-c', LAUNCHER, 'launcher', '/home/vcap/app', web]);
  const l = { p, done: finished(p), port, guid, tmp };
  try {
    assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, 180_000), 'pong');
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${JSON.stringify(await l.done)}`);
  }
  return l;
}

/** How the launcher ended: its exit code must be the status it reports, and $PORT closed. */
async function ended(l: Launched): Promise<{ r: Result; status: number }> {
  const r = await l.done;
  const said = /the app exited with status (\d+)/.exec(r.stderr);
  assert.ok(said, r.stderr);
  assert.equal(r.code, Number(said[1]), r.stderr);
  assert.ok(await refused(`http://127.0.0.1:${l.port}/ping_test`), '$PORT is closed');
  return { r, status: r.code! };
}

test("launch: the web command, started as CF's launcher starts it, runs the unikernel on $PORT; SIGTERM stops and removes it", { timeout: 600_000 }, async () => {
  const l = await launch();
  try {
    assert.equal(await httpUntil(`http://127.0.0.1:${l.port}/env_test`), 'from-cf', "the app's env reaches the unikernel");

    const insts = (await api('GET', '/instances')).json as any[];
    assert.equal(insts.length, 1);
    const inst = insts[0];
    assert.equal(inst.Name, `cf-web-touch-tmp-pwned-touch-tmp-pwned-touch-tmp-pwned-${l.guid}`);
    assert.equal(inst.State, 'running');
    assert.equal(inst.MemoryMb, 128, "MEMORY_LIMIT is the VM's RAM");
    assert.equal(inst.Ports.length, 1);
    assert.equal(inst.Ports[0].HostIp, '127.0.0.1');
    assert.equal(inst.Ports[0].GuestPort, 8080);
    assert.equal(inst.Env.PORT, '8080', 'the guest listens on its own port');
    assert.equal(JSON.parse(inst.Env.VCAP_APPLICATION).application_name, HOSTILE_NAME);
    assert.equal(JSON.parse(inst.Env.VCAP_APPLICATION).port, 8080);
    assert.equal(inst.Env.CF_INSTANCE_GUID, l.guid);
    assert.deepEqual(JSON.parse(inst.Env.VCAP_SERVICES), {}, 'VCAP_SERVICES passes, without the unik binding');
    for (const k of ['HOME', 'PATH', 'DEPS_DIR', 'TMPDIR']) assert.equal(inst.Env[k], undefined, `${k} stays in the container`);
    assert.ok(!Object.keys(inst.Env).some((k) => k.startsWith('UNIK_')), 'no unik setting enters the guest');
    assert.ok(!(await api('GET', `/instances/${inst.Id}`)).text.includes(TOKEN), 'the token is nowhere in the instance');

    // CF stops an instance with SIGTERM to its process (here the launcher: every exec above kept its pid)
    const pid = await waitFor('the launcher process', async () => launcherPid(l.p.pid!));
    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    const { r, status } = await ended(l);
    const took = Date.now() - t0;
    assert.ok(took < 10_000, `stopped in ${took} ms, within CF's 10 s`);
    assert.match(r.stdout, /go-http listening on :8080/, 'the console is the app log (stdout)');
    assert.equal(status, 143, 'go-http does not catch SIGTERM: 128 + 15');
    assert.deepEqual((await api('GET', '/instances')).json, [], 'the instance is removed');
    assert.ok(!existsSync(join(l.tmp, 'pwned')) && !existsSync(join(home, 'app', 'pwned')), 'the app name reached no shell');
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGKILL');
  }
});

test('launch: when the app exits by itself the launcher exits with its status (CF sees a crash), and the instance is removed', { timeout: 300_000 }, async () => {
  const l = await launch();
  try {
    assert.equal(await httpUntil(`http://127.0.0.1:${l.port}/exit_test?code=3`), 'exiting');
    const { status } = await ended(l);
    assert.equal(status, 3);
    assert.deepEqual((await api('GET', '/instances')).json, []);
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGKILL');
  }
});

test('launch: a launcher killed with SIGKILL (CF after 10 s, or a failed cell) leaves no instance: the daemon removes it when its log stream drops', { timeout: 300_000 }, async () => {
  const l = await launch();
  try {
    assert.equal((await api('GET', '/instances')).json.length, 1);
    process.kill(await waitFor('the launcher process', async () => launcherPid(l.p.pid!)), 'SIGKILL');
    await l.done;
    await waitFor('the instance to go', async () => ((await api('GET', '/instances')).json.length === 0 ? true : undefined), 30_000);
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGKILL');
  }
});

/** The launcher's node process under bwrap (bwrap → bash → … exec'd into node). */
function launcherPid(root: number): number | undefined {
  const kids = (pid: number): number[] => {
    try {
      return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      return [];
    }
  };
  const todo = [root];
  while (todo.length) {
    const pid = todo.shift()!;
    const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    if (cmd.includes('cloudfoundry/lib/launch.js')) return pid;
    todo.push(...kids(pid));
  }
  return undefined;
}

test('hostile app: links out of the app (to /etc/shadow, to a secret, by absolute or relative path) are refused by the daemon; nothing is read or built', { timeout: 300_000 }, async () => {
  const images = (await api('GET', '/images')).json.length;
  // inside a staging container the secret is /tmp/host-secret, readable by "vcap", as /etc/shadow is
  for (const [link, target, why] of [
    ['shadow', '/etc/shadow', 'a symlink to an absolute path \\(/etc/shadow\\)'],
    ['secret', '/tmp/host-secret', 'a symlink to an absolute path \\(/tmp/host-secret\\)'],
    ['secret', '../host-secret', 'a symlink to \\.\\./host-secret, outside its root'],
  ] as const) {
    const app = mkdtempSync(join(T, 'linked-app-'));
    cpSync(join(ROOT, 'examples/go-http'), app, { recursive: true });
    symlinkSync(target, join(app, link));
    const s = await stage(app, stagingEnv('linked'), { prepare: (tmp) => writeFileSync(join(tmp, 'host-secret'), SECRET, { mode: 0o600 }) });
    assert.equal(s.detect!.code, 0);
    assert.equal(s.finalize!.code, 1, s.finalize!.stdout + s.finalize!.stderr);
    // the packer sent the link itself, never what it points at, and the daemon refused the upload
    assert.match(s.finalize!.stderr, new RegExp(`not allowed: \\./${link}: ${why}`));
    assert.ok(!JSON.stringify(s).includes(SECRET), 'the secret is in no output');
    assert.deepEqual(filesHolding(s.contents, SECRET), [], 'nor in what would be the droplet');
  }
  assert.equal((await api('GET', '/images')).json.length, images, 'no image');
  assert.deepEqual(filesHolding(d.home, SECRET), [], "the secret is nowhere in the daemon's home");
});

test('hostile app: odd unik.yaml content reaches no shell and is refused by the daemon; detect prints no text of it', { timeout: 300_000 }, async () => {
  const app = join(T, 'odd-yaml');
  cpSync(join(ROOT, 'examples/go-http'), app, { recursive: true });
  writeFileSync(join(app, 'unik.yaml'), 'language: "go; touch /tmp/pwned $(touch /tmp/pwned)"\nargs: ["`touch /tmp/pwned`"]\n');
  const s = await stage(app, stagingEnv('odd'));
  assert.equal(s.detect!.code, 0);
  assert.equal(s.detect!.stdout, 'unik\n', 'an unknown language is not echoed');
  assert.equal(s.finalize!.code, 1);
  assert.match(s.finalize!.stderr, /unknown language/);
  assert.ok(!existsSync(join(s.tmp, 'pwned')) && !existsSync('/tmp/pwned'));

  // files: from a host path the daemon never hands out
  writeFileSync(join(app, 'unik.yaml'), 'files: [{from: /etc/shadow, to: /app/shadow}]\n');
  const f = await stage(app, stagingEnv('files'));
  assert.equal(f.finalize!.code, 1, f.finalize!.stdout);
  assert.match(f.finalize!.stderr, /unik\.yaml files: \/etc\/shadow is outside/);
});

test("hostile app: a .profile.d linked out of the app is not written through (finalize without PROFILE_DIR), before any build", { timeout: 120_000 }, async () => {
  const app = join(T, 'profile-link');
  cpSync(join(ROOT, 'examples/go-http'), app, { recursive: true });
  symlinkSync('/tmp/elsewhere', join(app, '.profile.d'));
  const builds = (await api('GET', '/images')).json.length;
  const s = await stage(app, stagingEnv('profile'), { noProfileDir: true, prepare: (tmp) => mkdirSync(join(tmp, 'elsewhere')) });
  assert.equal(s.finalize!.code, 1);
  assert.match(s.finalize!.stderr, /\.profile\.d is not a folder/);
  assert.deepEqual(readdirSync(join(s.tmp, 'elsewhere')), []);
  assert.equal((await api('GET', '/images')).json.length, builds);
});

test('launch: a PORT that is not a number stops the launcher before it reaches the daemon', { timeout: 60_000 }, async () => {
  assert.ok(staged?.release, 'staged');
  const env = { ...runningEnv(0, randomUUID()), PORT: '8080$(touch /tmp/pwned)' };
  const launchTmp = mkdtempSync(join(T, 'launch-tmp-'));
  const r = await finished(container([[home, '/home/vcap'], [launchTmp, '/tmp']], env, '/home/vcap', ['bash', '-c', LAUNCHER, 'launcher', '/home/vcap/app', 'unik-cf-launch']));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /PORT "8080\$\(touch \/tmp\/pwned\)" is not a port number/);
  assert.deepEqual((await api('GET', '/instances')).json, []);
  assert.ok(!existsSync(join(launchTmp, 'pwned')));
});
