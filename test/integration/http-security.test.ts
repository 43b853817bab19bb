// The daemon as a web page, a rebinding DNS name and a remote client would meet it: a real
// headless Chromium on another origin, raw upgrades without a token, and TLS with the unik CLI
// and the real docker CLI. Each refusal is checked by what it left behind: nothing.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { Daemon, ROOT, freePort, suiteDaemon } from './harness.js';
import { launchChromium, pageResults, serveForeignPage } from './browser.js';
import { makeCerts, type TestCerts } from './certs.js';

const CLI = join(ROOT, 'bin', 'unik');

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One raw HTTP/1.1 upgrade request (docker attach); resolves with the status line and body. */
function rawUpgrade(port: number, headers: Record<string, string>, tls?: { ca: Buffer }, target = '/v1.43/containers/nosuch/attach?stream=1&stdout=1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tls ? tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: 'localhost' }) : connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (got += d));
    sock.on('end', () => resolve(got));
    sock.on('close', () => resolve(got));
    sock.on('error', reject);
    const lines = [`POST ${target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: Upgrade', 'Upgrade: tcp', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    sock.write(lines.join('\r\n') + '\r\n\r\n');
    setTimeout(() => sock.destroy(), 5000);
  });
}

describe('browsers cannot drive the daemon', () => {
  const d = suiteDaemon();
  let browser: Browser;
  let attacker: { url: string; close: () => void } | undefined;
  const canary = join(tmpdir(), `unik-xo-canary-${process.pid}-${Date.now()}`);

  /** The attacker's page: every request a page can make without the daemon's consent. */
  function attackPage(daemon: string, tarB64: string): string {
    return `<!doctype html><html><body><iframe name="sink"></iframe><script>
const D = ${JSON.stringify(daemon)};
const results = {};
const settle = (name, p) => p.then((r) => (results[name] = 'answered:' + r.type + ':' + r.status), (e) => (results[name] = 'blocked:' + e.name));
(async () => {
  const tar = Uint8Array.from(atob(${JSON.stringify(tarB64)}), (c) => c.charCodeAt(0));
  const form = new FormData();
  form.append('tarfile', new Blob([tar]), 'app.tar.gz');
  await Promise.all([
    settle('build', fetch(D + '/images/xo-build/create?lang=c', { method: 'POST', mode: 'no-cors', body: form })),
    settle('volume', fetch(D + '/volumes/xo-made?size=8', { method: 'POST', mode: 'no-cors' })),
    settle('docker', fetch(D + '/v1.43/volumes/create', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"Name":"xo-docker"}' })),
    settle('delete', fetch(D + '/volumes/victim', { method: 'DELETE' })),
    settle('read', fetch(D + '/volumes')),
    new Promise((r) => { const i = new Image(); i.onload = i.onerror = r; i.src = D + '/volumes/victim'; }),
  ]);
  const f = document.createElement('form');
  f.method = 'POST'; f.action = D + '/volumes/xo-form?size=8'; f.target = 'sink';
  document.body.appendChild(f);
  const loaded = new Promise((r) => (document.querySelector('iframe').onload = r));
  f.submit();
  await Promise.race([loaded, new Promise((r) => setTimeout(r, 3000))]);
  window.results = results;
})();
</script></body></html>`;
  }

  before(async () => {
    browser = await launchChromium(['--host-resolver-rules=MAP rebind.test 127.0.0.1']);
    const made = await d.api('POST', '/volumes/victim?size=8');
    assert.equal(made.status, 201, made.text);
  });
  after(async () => {
    await browser?.close();
    attacker?.close();
    rmSync(canary, { force: true });
  });

  test('a page on another origin: every request refused, nothing built, written or deleted', async () => {
    // a C app whose Makefile would leave a canary on the host if it ever ran
    const app = mkdtempSync(join(tmpdir(), 'unik-xo-app-'));
    writeFileSync(join(app, 'Makefile'), `all:\n\ttouch ${canary}\n\tprintf 'int main(){return 0;}' > m.c && musl-gcc -static -o app m.c\n`);
    const tgz = await new Promise<Buffer>((resolve, reject) => execFile('tar', ['-czf', '-', '-C', app, '.'], { encoding: 'buffer' }, (e, out) => (e ? reject(e) : resolve(out))));
    rmSync(app, { recursive: true, force: true });

    attacker = await serveForeignPage(attackPage(d.url, tgz.toString('base64')));
    const page = await browser.newPage();
    await page.goto(attacker.url);
    const results = await pageResults(page);
    await page.close();

    // the page could send its simple requests (opaque answers), but could read nothing
    assert.equal(results.read, 'blocked:TypeError', JSON.stringify(results));
    assert.equal(results.delete, 'blocked:TypeError', JSON.stringify(results));
    assert.match(results.volume ?? '', /^answered:opaque/, JSON.stringify(results));
    await sleep(1000);
    const vols = (await d.api('GET', '/volumes')).json as { Name: string }[];
    assert.deepEqual(vols.map((v) => v.Name), ['victim'], 'no volume made, the victim not deleted');
    assert.deepEqual((await d.api('GET', '/images')).json, [], 'no image built');
    assert.equal(existsSync(canary), false, 'the Makefile never ran');
    assert.deepEqual(readdirSync(join(d.home, 'tmp')).filter((f) => !f.startsWith('.')), [], 'no upload was even stored');
    assert.deepEqual(readdirSync(join(d.home, 'volumes')).length, 1);
  });

  test('DNS rebinding: a page of rebind.test resolving to 127.0.0.1 reads and changes nothing', async () => {
    const page = await browser.newPage();
    const origin = `http://rebind.test:${d.port}`;
    // the attacker's server answered the first lookup; later ones go to the daemon
    await page.route(`${origin}/`, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<script>(async () => { const r = {}; for (const [k, m, p] of [['list','GET','/volumes'],['make','POST','/volumes/rebound?size=8'],['docker','GET','/v1.43/containers/json']]) { try { const res = await fetch(p, { method: m }); r[k] = res.status + ':' + (await res.text()); } catch (e) { r[k] = 'blocked:' + e.name; } } window.results = r; })();</script>`,
      }),
    );
    await page.goto(`${origin}/`);
    const results = await pageResults(page);
    await page.close();
    assert.equal(Object.keys(results).length, 3, JSON.stringify(results));
    for (const [k, v] of Object.entries(results)) {
      assert.ok(!v.includes('victim'), `${k}: the page read the daemon's data: ${v}`);
      assert.ok(/^403:.*UNIK_ERR_FORBIDDEN_HOST/.test(v) || v.startsWith('blocked:'), `${k}: ${v}`);
    }
    const vols = (await d.api('GET', '/volumes')).json as { Name: string }[];
    assert.deepEqual(vols.map((v) => v.Name), ['victim']);
    // the same requests from a plain client with the rebinding Host
    // (fetch forbids setting Host: node:http sends it as given)
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: d.port, path: '/volumes', headers: { host: `rebind.test:${d.port}` } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 403);
    assert.equal((JSON.parse(body) as { code: string }).code, 'UNIK_ERR_FORBIDDEN_HOST');
    assert.doesNotMatch(body, /victim/);
  });

  test('the attach upgrade goes through the same guard', async () => {
    assert.match(await rawUpgrade(d.port, { Origin: 'http://evil.test' }), /^HTTP\/1.1 403 .*UNIK_ERR_FORBIDDEN_ORIGIN/s);
    assert.match(await rawUpgrade(d.port, { 'Sec-Fetch-Site': 'cross-site' }), /^HTTP\/1.1 403/);
    // without an Origin it reaches the attach code, which does not know the container
    assert.match(await rawUpgrade(d.port, {}), /^HTTP\/1.1 404/);
    // a request line no URL parser takes: the connection is dropped, the daemon stays up
    assert.equal(await rawUpgrade(d.port, {}, undefined, '//[/containers/x/attach'), '');
    assert.equal((await d.api('GET', '/volumes')).status, 200);
  });
});

describe('a token daemon: every route and the attach upgrade need the token', () => {
  const token = `tok-${process.pid}-${Date.now()}`;
  const d = new Daemon();
  before(async () => {
    d.env.UNIK_API_TOKEN = token;
    await d.start().catch(() => {});
  });
  after(() => d.destroy());

  test('upgrade without or with a wrong token: 401; with it: through to attach', async () => {
    for (const auth of [{}, { Authorization: "Bearer nope" }, { Authorization: token }] as Record<string, string>[]) assert.match(await rawUpgrade(d.port, auth), /^HTTP\/1.1 401 .*UNIK_ERR_UNAUTHORIZED/s, JSON.stringify(auth));
    assert.match(await rawUpgrade(d.port, { Authorization: `Bearer ${token}` }), /^HTTP\/1.1 404/);
  });

  test('the CLI sends UNIK_API_TOKEN; without it the daemon says what to do', async () => {
    const ok = await run(process.execPath, [CLI, 'volumes', '--json'], d.env);
    assert.equal(ok.code, 0, ok.stderr);
    const no = await run(process.execPath, [CLI, 'volumes'], { ...d.env, UNIK_API_TOKEN: '' });
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /token/i);
  });
});

/** A daemon started by hand with TLS flags; resolves once it listens. */
async function tlsDaemon(args: string[], env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; port: number; home: string; log: () => string }> {
  const home = mkdtempSync(join(tmpdir(), 'unik-tls-'));
  const port = await freePort();
  let log = '';
  const proc = spawn(process.execPath, [CLI, 'daemon', '--port', String(port), ...args], { env: { ...env, UNIK_HOME: home, UNIK_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (b: Buffer) => (log += b));
  proc.stderr!.on('data', (b: Buffer) => (log += b));
  for (let i = 0; i < 100 && !/listening/.test(log); i++) {
    if (proc.exitCode !== null) throw new Error(`daemon exited: ${log}`);
    await sleep(100);
  }
  assert.match(log, /listening on https:/);
  return { proc, port, home, log: () => log };
}

describe('TLS: a listener beyond loopback, and the CLIs against it', () => {
  let certs: TestCerts;
  const baseEnv = { ...process.env, UNIK_HOST: '', UNIK_API_TOKEN: '', DOCKER_HOST: '', DOCKER_TLS_VERIFY: '', DOCKER_CERT_PATH: '' };
  const cleanup: (() => void)[] = [];
  before(() => {
    certs = makeCerts();
  });
  after(() => {
    for (const c of cleanup) c();
    rmSync(certs.dir, { recursive: true, force: true });
    rmSync(certs.strangerDir, { recursive: true, force: true });
  });

  test('a non-loopback listener without TLS, or with TLS and no authentication, is refused and touches nothing', async () => {
    const home = mkdtempSync(join(tmpdir(), 'unik-tls-refuse-'));
    cleanup.push(() => rmSync(home, { recursive: true, force: true }));
    const env = { ...baseEnv, UNIK_HOME: join(home, 'h') };
    const plain = await run(process.execPath, [CLI, 'daemon', '--host', '0.0.0.0', '--port', String(await freePort())], { ...env, UNIK_API_TOKEN: 'x' });
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /without TLS/);
    const noAuth = await run(process.execPath, [CLI, 'daemon', '--host', '0.0.0.0', '--port', String(await freePort()), '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey], env);
    assert.equal(noAuth.code, 1);
    assert.match(noAuth.stderr, /without authentication/);
    assert.equal(existsSync(join(home, 'h')), false, 'no state was created');
  });

  test('--tls-verify: the unik CLI and the docker CLI with client certificates; without, or with a stranger\'s, refused', async () => {
    const dmn = await tlsDaemon(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-verify', '--tls-ca', certs.ca], baseEnv);
    cleanup.push(() => {
      dmn.proc.kill('SIGKILL');
      rmSync(dmn.home, { recursive: true, force: true });
    });
    const host = `127.0.0.1:${dmn.port}`;
    const unik = (args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [CLI, ...args], { ...baseEnv, UNIK_HOST: host, UNIK_HOME: dmn.home, ...env });

    const made = await unik(['create-volume', 'tlsvol', '8'], { UNIK_TLS_VERIFY: '1', UNIK_CERT_PATH: certs.dir });
    assert.equal(made.code, 0, made.stderr);
    const listed = await unik(['volumes', '--json'], { UNIK_TLS_VERIFY: '1', UNIK_CERT_PATH: certs.dir });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /tlsvol/);
    const flags = await unik(['--tlsverify', '--tlscacert', certs.ca, '--tlscert', certs.clientCert, '--tlskey', certs.clientKey, 'volumes']);
    assert.equal(flags.code, 0, flags.stderr);

    const noCert = await unik(['volumes'], { UNIK_TLS: '1', UNIK_CERT_PATH: join(certs.strangerDir, 'nope'), NODE_EXTRA_CA_CERTS: certs.ca });
    assert.notEqual(noCert.code, 0);
    assert.match(noCert.stderr, /client certificate/);
    const stranger = await unik(['volumes'], { UNIK_TLS_VERIFY: '1', UNIK_CERT_PATH: certs.strangerDir });
    assert.notEqual(stranger.code, 0);
    assert.match(stranger.stderr, /client certificate/);
    const plainHttp = await unik(['volumes']);
    assert.notEqual(plainHttp.code, 0, 'plain HTTP to the TLS port fails');

    const docker = (args: string[], env: NodeJS.ProcessEnv = {}) => run('timeout', ['-s', 'KILL', '60', 'docker', ...args], { ...baseEnv, HOME: dmn.home, DOCKER_CONFIG: join(dmn.home, 'docker-config'), ...env });
    const v = await docker(['-H', `tcp://${host}`, '--tlsverify', '--tlscacert', certs.ca, '--tlscert', certs.clientCert, '--tlskey', certs.clientKey, 'volume', 'ls']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /tlsvol/);
    const envDocker = await docker(['ps', '-a'], { DOCKER_HOST: `tcp://${host}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs.dir });
    assert.equal(envDocker.code, 0, envDocker.stderr);
    assert.match(envDocker.stdout, /CONTAINER ID/);
    const strangerDocker = await docker(['volume', 'ls'], { DOCKER_HOST: `tcp://${host}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs.strangerDir });
    assert.notEqual(strangerDocker.code, 0);
    assert.match(strangerDocker.stderr, /client certificate/);
    const plainDocker = await docker(['-H', `tcp://${host}`, 'volume', 'ls']);
    assert.notEqual(plainDocker.code, 0);
    assert.doesNotMatch(plainDocker.stdout, /tlsvol/);
  });

  test('TLS + token: the docker CLI sends the token from its config\'s HttpHeaders; the upgrade needs it too', async () => {
    const token = `tls-token-${Date.now()}`;
    const dmn = await tlsDaemon(['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey], { ...baseEnv, UNIK_API_TOKEN: token });
    cleanup.push(() => {
      dmn.proc.kill('SIGKILL');
      rmSync(dmn.home, { recursive: true, force: true });
    });
    const host = `127.0.0.1:${dmn.port}`;
    const ok = await run(process.execPath, [CLI, '--tls', '--tlscacert', certs.ca, 'volumes', '--json'], { ...baseEnv, UNIK_HOST: host, UNIK_API_TOKEN: token });
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = await run(process.execPath, [CLI, '--tls', '--tlscacert', certs.ca, 'volumes'], { ...baseEnv, UNIK_HOST: host, UNIK_API_TOKEN: 'wrong' });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /token/);

    const cfg = join(dmn.home, 'docker-config');
    mkdirSync(cfg, { recursive: true });
    writeFileSync(join(cfg, 'config.json'), JSON.stringify({ HttpHeaders: { Authorization: `Bearer ${token}` } }));
    const docker = (env: NodeJS.ProcessEnv) => run('timeout', ['-s', 'KILL', '60', 'docker', '-H', `tcp://${host}`, '--tlsverify', '--tlscacert', certs.ca, 'version', '--format', '{{.Server.Version}}'], { ...baseEnv, HOME: dmn.home, ...env });
    const withToken = await docker({ DOCKER_CONFIG: cfg });
    assert.equal(withToken.code, 0, withToken.stderr);
    const noToken = await docker({ DOCKER_CONFIG: join(dmn.home, 'empty-config') });
    assert.notEqual(noToken.code, 0);
    assert.match(noToken.stderr, /token/);

    const ca = readFileSync(certs.ca);
    assert.match(await rawUpgrade(dmn.port, {}, { ca }), /^HTTP\/1.1 401/);
    assert.match(await rawUpgrade(dmn.port, { Authorization: `Bearer ${token}` }, { ca }), /^HTTP\/1.1 404/);
  });
});
