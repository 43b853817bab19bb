// The hub in the CLI and client: the credential store, refs, X-Registry-Auth, login input,
// byte progress, and HubApi / `unik hub` against a tiny local HTTP server.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  credentialsFor,
  dockerConfigPath,
  hubConfigPath,
  normalizeRegistry,
  registryOf,
  removeCredentials,
  saveCredentials,
} from '../../src/cli/hub-auth.js';
import { loginCredentials, promptLine, searchRow, type LoginIO } from '../../src/cli/commands/hub.js';
import { CliError } from '../../src/cli/errors.js';
import { ProgressPrinter } from '../../src/cli/progress.js';
import { UnikApiError, UnikClient, decodeRegistryAuth, encodeRegistryAuth, localNameOf } from '../../src/client/index.js';
import type { HubProgress } from '../../src/client/index.js';
import type { ImageJson } from '../../src/api/types.js';
import { cli } from './cli-harness.js';
import { startServer, type Reply } from './recording-server.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** A temp UNIK_HOME and HOME for the test process (os.homedir() reads HOME); restored after. */
function tempHome(): { readonly dir: string; setup: () => Promise<void>; teardown: () => Promise<void> } {
  const saved: Record<string, string | undefined> = {};
  let dir = '';
  return {
    get dir() {
      return dir;
    },
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'unik-hub-'));
      for (const k of ['HOME', 'UNIK_HOME', 'DOCKER_CONFIG']) saved[k] = process.env[k];
      process.env.HOME = join(dir, 'home');
      process.env.UNIK_HOME = join(dir, 'unik');
      delete process.env.DOCKER_CONFIG;
      mkdirSync(process.env.HOME, { recursive: true });
    },
    async teardown() {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function writeDockerConfig(auths: Record<string, unknown>): void {
  const path = dockerConfigPath();
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, JSON.stringify({ auths }));
}

describe('registryOf', () => {
  it('is the first path component when it has "." or ":" or is localhost, else docker.io', () => {
    assert.equal(registryOf('127.0.0.1:5000/a/b:v1'), '127.0.0.1:5000');
    assert.equal(registryOf('localhost:5000/x'), 'localhost:5000');
    assert.equal(registryOf('localhost/x'), 'localhost');
    assert.equal(registryOf('ghcr.io/o/r'), 'ghcr.io');
    assert.equal(registryOf('library/busybox'), 'docker.io');
    assert.equal(registryOf('busybox:latest'), 'docker.io');
    assert.equal(registryOf('busybox@sha256:abc'), 'docker.io');
    assert.equal(registryOf('index.docker.io/library/busybox'), 'docker.io');
  });

  it('normalizes a registry given as a URL', () => {
    assert.equal(normalizeRegistry('https://ghcr.io/v2/'), 'ghcr.io');
    assert.equal(normalizeRegistry('http://127.0.0.1:5000'), '127.0.0.1:5000');
    assert.equal(normalizeRegistry('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(normalizeRegistry(' 127.0.0.1:5000 '), '127.0.0.1:5000');
  });

  it('gives the local name a pull stores REF as', () => {
    assert.equal(localNameOf('127.0.0.1:5000/unik/go-http:v1'), 'go-http');
    assert.equal(localNameOf('localhost:5000/app'), 'app');
    assert.equal(localNameOf('ghcr.io/o/r@sha256:0123'), 'r');
    assert.equal(localNameOf('busybox'), 'busybox');
  });
});

describe('X-Registry-Auth', () => {
  it('is base64 of the JSON {username, password, serveraddress}', () => {
    const auth = { username: 'u', password: 'p:ä/+', serveraddress: '127.0.0.1:5000' };
    const header = encodeRegistryAuth(auth);
    assert.match(header, /^[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(JSON.parse(Buffer.from(header, 'base64').toString('utf8')), auth);
    assert.deepEqual(decodeRegistryAuth(header), auth);
  });
});

describe('credential store', () => {
  const home = tempHome();
  beforeEach(async () => {
    await home.teardown().catch(() => undefined);
    await home.setup();
  });
  after(() => home.teardown());

  it('writes $UNIK_HOME/hub-config.json in docker config shape, mode 0600', async () => {
    await saveCredentials('127.0.0.1:5000', 'u', 'p:with:colons');
    const path = hubConfigPath();
    assert.equal(path, join(home.dir, 'unik', 'hub-config.json'));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { auths: { '127.0.0.1:5000': { auth: b64('u:p:with:colons') } } });
    assert.deepEqual(credentialsFor('127.0.0.1:5000'), { username: 'u', password: 'p:with:colons', serveraddress: '127.0.0.1:5000' });
    assert.equal(credentialsFor('ghcr.io'), undefined);
  });

  it('makes an existing file 0600, keeps other entries and keys, replaces by rename', async () => {
    const path = hubConfigPath();
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, JSON.stringify({ auths: { 'ghcr.io': { auth: b64('a:b') }, 'https://127.0.0.1:5000': { auth: b64('old:old') } }, other: 1 }));
    chmodSync(path, 0o644);
    const inode = statSync(path).ino;
    await saveCredentials('127.0.0.1:5000', 'u', 'p');
    const st = statSync(path);
    assert.equal(st.mode & 0o777, 0o600);
    assert.notEqual(st.ino, inode, 'written to a temp file and renamed over, not rewritten in place');
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), {
      auths: { 'ghcr.io': { auth: b64('a:b') }, '127.0.0.1:5000': { auth: b64('u:p') } },
      other: 1,
    });
    assert.deepEqual(readdirSync(join(path, '..')), ['hub-config.json'], 'no temp file left');
  });

  it('leaves no temp file and the target untouched when the rename fails', async () => {
    const path = hubConfigPath();
    mkdirSync(join(path, 'occupied'), { recursive: true }); // a non-empty directory where the file goes
    await assert.rejects(saveCredentials('127.0.0.1:5000', 'u', 'p'));
    assert.deepEqual(readdirSync(join(path, '..')), ['hub-config.json']);
    assert.ok(statSync(path).isDirectory());
  });

  it('refuses to overwrite a malformed file', async () => {
    const path = hubConfigPath();
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '{"auths": [');
    await assert.rejects(saveCredentials('r:5000', 'u', 'p'), (err: unknown) => err instanceof CliError && /not a valid credentials file/.test(err.message));
    assert.throws(() => credentialsFor('r:5000'), CliError);
    assert.equal(readFileSync(path, 'utf8'), '{"auths": [');
  });

  it("falls back to ~/.docker/config.json, with http(s):// keys; unik's file wins", async () => {
    writeDockerConfig({
      'https://ghcr.io': { auth: b64('gh:token') },
      'http://127.0.0.1:5000': { auth: b64('d:dp') },
      'https://index.docker.io/v1/': { auth: b64('hub:hp') },
      'quay.io': { auth: b64('q:qp') },
      'helper.io': {}, // a credsStore entry: no auth here
    });
    assert.equal(dockerConfigPath(), join(home.dir, 'home', '.docker', 'config.json'));
    assert.deepEqual(credentialsFor('ghcr.io'), { username: 'gh', password: 'token', serveraddress: 'ghcr.io' });
    assert.deepEqual(credentialsFor('quay.io'), { username: 'q', password: 'qp', serveraddress: 'quay.io' });
    assert.deepEqual(credentialsFor('docker.io'), { username: 'hub', password: 'hp', serveraddress: 'docker.io' });
    assert.equal(credentialsFor('127.0.0.1:5000')?.username, 'd');
    assert.equal(credentialsFor('helper.io'), undefined);
    await saveCredentials('127.0.0.1:5000', 'u', 'p');
    assert.equal(credentialsFor('127.0.0.1:5000')?.username, 'u');
  });

  it('honours $DOCKER_CONFIG and ignores a malformed docker file', async () => {
    const dir = join(home.dir, 'dockercfg');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('x:y') } } }));
    assert.equal(credentialsFor('ghcr.io', { ...process.env, DOCKER_CONFIG: dir })?.username, 'x');
    writeDockerConfig({});
    writeFileSync(dockerConfigPath(), 'not json');
    assert.equal(credentialsFor('ghcr.io'), undefined);
  });

  it('logout removes the entry from unik\'s file only, and says whether there was one', async () => {
    writeDockerConfig({ 'ghcr.io': { auth: b64('gh:token') } });
    const dockerBefore = readFileSync(dockerConfigPath(), 'utf8');
    await saveCredentials('ghcr.io', 'u', 'p');
    await saveCredentials('127.0.0.1:5000', 'u', 'p');
    assert.equal(await removeCredentials('ghcr.io'), true);
    assert.equal(await removeCredentials('ghcr.io'), false);
    assert.equal(await removeCredentials('nowhere:1'), false);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(hubConfigPath(), 'utf8')).auths), ['127.0.0.1:5000']);
    assert.equal(statSync(hubConfigPath()).mode & 0o777, 0o600);
    assert.equal(readFileSync(dockerConfigPath(), 'utf8'), dockerBefore);
    assert.equal(credentialsFor('ghcr.io')?.username, 'gh'); // docker's, still there
  });
});

describe('hub login input', () => {
  const io = (stdin: LoginIO['stdin'], answers: string[] = []): LoginIO & { asked: string[]; err: string } => {
    const asked: string[] = [];
    const self = {
      stdin,
      asked,
      err: '',
      stderr: { write: (s: string) => (self.err += s) },
      prompt: async (q: string, hidden: boolean) => {
        asked.push(`${q}${hidden ? '(hidden)' : ''}`);
        return answers.shift() ?? '';
      },
    };
    return self;
  };
  const tty = (): LoginIO['stdin'] => Object.assign(new PassThrough(), { isTTY: true });
  const pipe = (text: string): LoginIO['stdin'] => Readable.from([Buffer.from(text)]);

  it('takes -u/-p (with a warning), or asks on a terminal: username visible, password hidden', async () => {
    const a = io(tty());
    assert.deepEqual(await loginCredentials({ username: 'u', password: 'p' }, a), { username: 'u', password: 'p' });
    assert.match(a.err, /WARNING! Using --password via the CLI is insecure/);
    const b = io(tty(), ['bob ', 's3cret']);
    assert.deepEqual(await loginCredentials({}, b), { username: 'bob', password: 's3cret' });
    assert.deepEqual(b.asked, ['Username: ', 'Password: (hidden)']);
    const c = io(tty(), ['pw']);
    assert.deepEqual(await loginCredentials({ username: 'u' }, c), { username: 'u', password: 'pw' });
    assert.deepEqual(c.asked, ['Password: (hidden)']);
  });

  it('reads --password-stdin, dropping one trailing newline', async () => {
    assert.deepEqual(await loginCredentials({ username: 'u', passwordStdin: true }, io(pipe('tok en\r\n'))), { username: 'u', password: 'tok en' });
    await assert.rejects(loginCredentials({ passwordStdin: true }, io(pipe('x\n'))), /--password-stdin needs --username/);
    await assert.rejects(loginCredentials({ username: 'u', password: 'p', passwordStdin: true }, io(pipe('x'))), /mutually exclusive/);
    await assert.rejects(loginCredentials({ username: 'u', passwordStdin: true }, io(pipe('\n'))), /password is empty/);
  });

  it('fails without a terminal to ask on', async () => {
    await assert.rejects(loginCredentials({ password: 'p' }, io(pipe(''))), (err: unknown) => err instanceof CliError && /missing --username/.test(err.message));
    await assert.rejects(loginCredentials({ username: 'u' }, io(pipe(''))), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.match(err.message, /missing password/);
      assert.match(err.hint ?? '', /--password-stdin/);
      return true;
    });
  });

  it('promptLine echoes nothing of a hidden answer', async () => {
    const input = Object.assign(new PassThrough(), { isTTY: true });
    let shown = '';
    const output = Object.assign(new PassThrough(), { write: (s: string | Uint8Array) => ((shown += String(s)), true) });
    const answer = promptLine('Password: ', true, input, output);
    input.write('s3cret\r');
    assert.equal(await answer, 's3cret');
    assert.match(shown, /Password: /);
    assert.doesNotMatch(shown, /s3cret/);
  });
});

describe('byte progress', () => {
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY, columns: 80, write: (s: string) => chunks.push(s) } };
  };

  it('shows Bytes/Total in human units; a new blob restarts the 5% throttle', () => {
    const { chunks, stream } = sink(false);
    const p = new ProgressPrinter(stream);
    for (let pct = 0; pct <= 100; pct += 2) p.event({ Step: 'push', Message: 'kernel', Percent: pct, Bytes: pct * 100_000, Total: 10_000_000 });
    p.event({ Step: 'push', Message: 'rootfs', Bytes: 0, Total: 2_000 });
    p.event({ Step: 'push', Message: 'rootfs', Bytes: 2_000, Total: 2_000 });
    assert.equal(chunks[0], '[push] kernel 0 B/10 MB 0%\n');
    assert.equal(chunks[1], '[push] kernel 600 kB/10 MB 6%\n');
    assert.equal(chunks.filter((c) => c.includes('kernel')).length, 18); // 0, 6, 12, ... 96, 100
    assert.deepEqual(chunks.slice(-2), ['[push] rootfs 0 B/2.0 kB 0%\n', '[push] rootfs 2.0 kB/2.0 kB 100%\n']);
  });

  it('redraws a byte counter without a total on a terminal; logs it every 2 s otherwise', () => {
    const tty = sink(true);
    const p = new ProgressPrinter(tty.stream);
    p.event({ Step: 'pull', Message: 'kernel', Bytes: 1_500_000 });
    p.finish();
    assert.deepEqual(tty.chunks, ['\r[pull] kernel 1.5 MB\x1b[K', '\n']);
    const log = sink(false);
    let now = 0;
    const q = new ProgressPrinter(log.stream, () => now);
    for (now = 0; now <= 5000; now += 500) q.event({ Step: 'pull', Message: 'kernel', Bytes: now * 1000 });
    assert.deepEqual(log.chunks, ['[pull] kernel 0 B\n', '[pull] kernel 2.0 MB\n', '[pull] kernel 4.0 MB\n']);
  });
});

const image = (name: string): ImageJson => ({
  Id: 'f'.repeat(64), Name: name, SizeMb: 9, Infrastructure: 'QEMU', Created: new Date().toISOString(),
  StageSpec: { ImageFormat: 'folder' },
  RunSpec: { DeviceMappings: [], DefaultInstanceMemory: 128, MinInstanceDiskMB: 0, Compiler: 'linux-go-qemu' },
  SizeBytes: 9_000_000, Base: 'linux', Language: 'go', Provider: 'qemu', Args: [], KernelConfigHash: 'h',
});


const ndjson = (...lines: unknown[]): Reply => ({
  status: 200,
  type: 'application/x-ndjson',
  body: lines.map((l) => JSON.stringify(l)).join('\n') + '\n',
});

const refused = (): Reply => ({
  status: 401,
  body: JSON.stringify({ message: 'registry 127.0.0.1:5000 refused the credentials of u', code: 'UNIK_ERR_REGISTRY_AUTH' }),
});

describe('HubApi', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  const auth = { username: 'u', password: 'p', serveraddress: '127.0.0.1:5000' };
  before(async () => {
    srv = await startServer();
  });
  after(() => {
    srv.server.closeAllConnections();
    srv.server.close();
  });
  beforeEach(() => {
    srv.seen.length = 0;
  });

  it('logs in with a JSON body (200), and a 401 is an UnikApiError', async () => {
    srv.reply(() => ({ status: 200, body: JSON.stringify({ Status: 'Login Succeeded' }) }));
    const client = new UnikClient(srv.url);
    assert.deepEqual(await client.hub.login({ registry: '127.0.0.1:5000', username: 'u', password: 'p' }), { Status: 'Login Succeeded' });
    const req = srv.seen[0];
    assert.ok(req);
    assert.equal(`${req.method} ${req.url}`, 'POST /hub/login');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['x-registry-auth'], undefined);
    assert.deepEqual(JSON.parse(req.text), { Registry: '127.0.0.1:5000', Username: 'u', Password: 'p', Insecure: false });
    srv.reply(refused);
    await assert.rejects(client.hub.login({ registry: '127.0.0.1:5000', username: 'u', password: 'bad', insecure: true }), (err: unknown) => {
      assert.ok(err instanceof UnikApiError);
      assert.equal(err.status, 401);
      assert.equal(err.code, 'UNIK_ERR_REGISTRY_AUTH');
      return true;
    });
    assert.equal(JSON.parse(srv.seen[1]?.text ?? '{}').Insecure, true);
  });

  it('pushes with NDJSON progress and X-Registry-Auth', async () => {
    const pushed = { Ref: '127.0.0.1:5000/unik/app:v1', Digest: 'sha256:' + 'a'.repeat(64), Size: 123 };
    srv.reply(() =>
      ndjson(
        { Progress: { Step: 'push', Message: 'kernel', Percent: 40, Bytes: 400, Total: 1000 } },
        { Progress: { Step: 'push', Message: 'manifest' } },
        { Pushed: pushed },
      ),
    );
    const events: HubProgress[] = [];
    const client = new UnikClient(srv.url);
    const result = await client.hub.push('app', '127.0.0.1:5000/unik/app:v1', { auth, insecure: true }, (p) => events.push(p));
    assert.deepEqual(result, pushed);
    assert.deepEqual(events, [
      { Step: 'push', Message: 'kernel', Percent: 40, Bytes: 400, Total: 1000 },
      { Step: 'push', Message: 'manifest' },
    ]);
    const req = srv.seen[0];
    assert.ok(req);
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/images/push/app?ref=127.0.0.1%3A5000%2Funik%2Fapp%3Av1&insecure=true');
    assert.equal(req.headers.accept, 'application/x-ndjson');
    assert.deepEqual(decodeRegistryAuth(String(req.headers['x-registry-auth'])), auth);
  });

  it('throws a streamed Error with its Status; expects 202 without a listener', async () => {
    srv.reply(() => ndjson({ Progress: { Step: 'push', Message: 'kernel' } }, { Error: { message: 'denied', code: 'UNIK_ERR_REGISTRY_AUTH', Status: 401 } }));
    const client = new UnikClient(srv.url);
    await assert.rejects(client.hub.push('app', 'r:1/a', {}, () => undefined), { name: 'UnikApiError', status: 401, message: 'denied' });
    srv.reply(() => ndjson({ Progress: { Step: 'push', Message: 'kernel' } }));
    await assert.rejects(client.hub.push('app', 'r:1/a', {}, () => undefined), { code: 'UNIK_ERR_HUB_STREAM_ENDED' });
    srv.reply(() => ({ status: 202, body: JSON.stringify({ Ref: 'r:1/a', Digest: 'sha256:x', Size: 1 }) }));
    assert.equal((await client.hub.push('app', 'r:1/a')).Digest, 'sha256:x');
    assert.equal(srv.seen.at(-1)?.headers.accept, 'application/json');
    assert.equal(srv.seen.at(-1)?.headers['x-registry-auth'], undefined);
    srv.reply(() => ({ status: 200, body: JSON.stringify({ Ref: 'r:1/a', Digest: 'sha256:x', Size: 1 }) }));
    await assert.rejects(client.hub.push('app', 'r:1/a'), { name: 'UnikApiError', status: 200 });
  });

  it('pulls without streaming: 202 and the image; the local name defaults to the repo', async () => {
    srv.reply(() => ({ status: 202, body: JSON.stringify(image('go-http')) }));
    const client = new UnikClient(srv.url);
    assert.equal((await client.hub.pull('127.0.0.1:5000/unik/go-http:v1')).Name, 'go-http');
    await client.hub.pull('127.0.0.1:5000/unik/go-http:v1', { name: 'web', auth, force: true, insecure: true });
    const [plain, named] = srv.seen;
    assert.ok(plain && named);
    assert.equal(plain.url, '/images/pull/go-http?ref=127.0.0.1%3A5000%2Funik%2Fgo-http%3Av1&insecure=false&force=false');
    assert.equal(plain.headers['x-registry-auth'], undefined);
    assert.equal(named.url, '/images/pull/web?ref=127.0.0.1%3A5000%2Funik%2Fgo-http%3Av1&insecure=true&force=true');
    assert.deepEqual(decodeRegistryAuth(String(named.headers['x-registry-auth'])), auth);
    srv.reply(() => ndjson({ Progress: { Step: 'pull', Message: 'kernel', Percent: 100 } }, { Image: image('go-http') }));
    const events: HubProgress[] = [];
    assert.equal((await client.hub.pull('r:1/go-http', {}, (p) => events.push(p))).Name, 'go-http');
    assert.equal(events.length, 1);
  });

  it('searches a registry', async () => {
    srv.reply(() => ({ status: 200, body: JSON.stringify([{ Name: 'unik/app', Tags: ['v1', 'latest'] }]) }));
    const client = new UnikClient(srv.url);
    assert.deepEqual(await client.hub.search('127.0.0.1:5000', 'app', { auth }), [{ Name: 'unik/app', Tags: ['v1', 'latest'] }]);
    await client.hub.search('127.0.0.1:5000');
    const [withTerm, bare] = srv.seen;
    assert.equal(withTerm?.url, '/hub/search?registry=127.0.0.1%3A5000&term=app&insecure=false');
    assert.deepEqual(decodeRegistryAuth(String(withTerm?.headers['x-registry-auth'])), auth);
    assert.equal(bare?.url, '/hub/search?registry=127.0.0.1%3A5000&insecure=false');
    assert.deepEqual(searchRow({ Name: 'unik/app', Tags: ['v1', 'latest'] }), ['unik/app', 'v1, latest']);
  });

  describe('through the CLI', () => {
    const home = tempHome();
    before(() => home.setup());
    after(() => home.teardown());

    it('hub login saves only accepted credentials', async () => {
      srv.reply(refused);
      const bad = await cli(['--host', srv.url, 'hub', 'login', '127.0.0.1:5000', '-u', 'u', '-p', 'bad']);
      assert.ok(bad.error instanceof UnikApiError);
      assert.equal(bad.out, '');
      assert.equal(credentialsFor('127.0.0.1:5000'), undefined);

      srv.reply(() => ({ status: 200, body: JSON.stringify({ Status: 'Login Succeeded' }) }));
      const ok = await cli(['--host', srv.url, 'hub', 'login', 'http://127.0.0.1:5000/', '--username', 'u', '--password', 'p', '--insecure']);
      assert.equal(ok.error, undefined);
      assert.equal(ok.out, 'Login Succeeded\n');
      assert.match(ok.err, /WARNING! Using --password/);
      assert.deepEqual(JSON.parse(srv.seen.at(-1)?.text ?? '{}'), { Registry: '127.0.0.1:5000', Username: 'u', Password: 'p', Insecure: true });
      assert.deepEqual(credentialsFor('127.0.0.1:5000'), auth);
      assert.equal(statSync(hubConfigPath()).mode & 0o777, 0o600);
    });

    it('hub push sends the saved credentials and prints REF@DIGEST', async () => {
      const digest = 'sha256:' + 'b'.repeat(64);
      srv.reply(() =>
        ndjson({ Progress: { Step: 'push', Message: 'kernel', Percent: 100, Bytes: 2_500_000, Total: 2_500_000 } }, { Pushed: { Ref: '127.0.0.1:5000/unik/app:v1', Digest: digest, Size: 9 } }),
      );
      const r = await cli(['--host', srv.url, 'hub', 'push', 'app', '127.0.0.1:5000/unik/app:v1', '--insecure']);
      assert.equal(r.error, undefined);
      assert.match(r.out, /\[push\] kernel 2\.5 MB\/2\.5 MB 100%/);
      assert.match(r.out, new RegExp(`pushed 127\\.0\\.0\\.1:5000/unik/app:v1@${digest}\\n$`));
      const req = srv.seen.at(-1);
      assert.equal(req?.url, '/images/push/app?ref=127.0.0.1%3A5000%2Funik%2Fapp%3Av1&insecure=true');
      assert.deepEqual(decodeRegistryAuth(String(req?.headers['x-registry-auth'])), auth);
    });

    it('hub pull prints the image row; a 401 without saved credentials hints at login', async () => {
      srv.reply(() => ndjson({ Progress: { Step: 'pull', Message: 'kernel', Percent: 50 } }, { Image: image('app') }));
      const r = await cli(['--host', srv.url, 'hub', 'pull', '127.0.0.1:5000/unik/app:v1', '--force']);
      assert.equal(r.error, undefined);
      assert.match(r.out, /NAME\s+ID\s+LANGUAGE\s+ARCH\s+PROVIDER\s+CREATED\s+SIZE\n/);
      assert.match(r.out, /app\s+ffffffffffff\s+go\s+amd64\s+qemu\s+.*ago\s+9\.0 MB/);
      assert.equal(srv.seen.at(-1)?.url, '/images/pull/app?ref=127.0.0.1%3A5000%2Funik%2Fapp%3Av1&insecure=false&force=true');

      srv.reply(() => ({ status: 401, body: JSON.stringify({ message: 'unauthorized', code: 'UNIK_ERR_REGISTRY_AUTH' }) }));
      const denied = await cli(['--host', srv.url, 'hub', 'pull', 'ghcr.io/o/r:v1', '--name', 'x']);
      assert.ok(denied.error instanceof UnikApiError);
      assert.equal(denied.error.hint, 'log in first: unik hub login ghcr.io');
      assert.equal(srv.seen.at(-1)?.headers['x-registry-auth'], undefined);
    });

    it('hub search prints NAME and TAGS', async () => {
      srv.reply(() => ({ status: 200, body: JSON.stringify([{ Name: 'unik/b', Tags: ['v1', 'latest'] }, { Name: 'unik/a', Tags: [] }]) }));
      const r = await cli(['--host', srv.url, 'hub', 'search', '127.0.0.1:5000', 'unik']);
      assert.equal(r.error, undefined);
      assert.equal(r.out, 'NAME     TAGS\nunik/a   -\nunik/b   v1, latest\n');
    });

    it('hub logout removes the entry, and says when there was none', async () => {
      const first = await cli(['hub', 'logout', '127.0.0.1:5000']);
      assert.equal(first.out, 'Removed login credentials for 127.0.0.1:5000\n');
      const again = await cli(['hub', 'logout', '127.0.0.1:5000']);
      assert.equal(again.exitCode, undefined);
      assert.match(again.out, /^Not logged in to 127\.0\.0\.1:5000/);
      assert.equal(credentialsFor('127.0.0.1:5000'), undefined);
    });
  });
});
