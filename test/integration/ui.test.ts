// The dashboard (/ui) in a real headless Chromium, against a real daemon: the page builds
// examples/go-http from its folder while the build's steps stream in, runs it with a published
// port, sees it running, follows its console, stops, starts and deletes it; a hostile app's
// output stays text; pages of other origins can neither drive the API nor frame the dashboard;
// a daemon with a token shows a prompt, and the page's calls fail with 401 until it is given.
// The screenshots in docs/screenshots/ (README, "Dashboard") are made by this run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'playwright-core';
import { Daemon, ROOT, freePort, httpUntil, refused, suiteDaemon } from './harness.js';
import { launchChromium, pageResults, serveForeignPage } from './browser.js';

const SHOTS = process.env.UNIK_SCREENSHOTS || join(ROOT, 'docs', 'screenshots');
const VIEWPORT = { width: 1200, height: 800 };

/** A page that records what it logs as errors (CSP violations among them) and its uncaught exceptions. */
async function openPage(browser: Browser, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return page;
}

/** A PNG of the page as it is (or of one of its parts) for the README. */
async function shot(page: Page, name: string, part?: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  if (part) await page.locator(part).screenshot({ path: join(SHOTS, name) });
  else {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, name) });
  }
}

describe('the dashboard, driven through a real Chromium', () => {
  const d = suiteDaemon();
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  let port = 0;
  const app = (path: string) => `http://127.0.0.1:${port}${path}`;
  const row = (name: string) => page.locator(`#instances tbody tr[data-name="${name}"]`);
  const consoleText = async () => (await page.locator('#console-text').textContent()) ?? '';

  before(async () => {
    browser = await launchChromium(['--host-resolver-rules=MAP rebind.test 127.0.0.1']);
    page = await openPage(browser, errors);
    port = await freePort();
  });
  after(async () => {
    await browser?.close();
  });

  test('its files: a strict CSP, nosniff, no framing, revalidated by ETag; no inline script', async () => {
    const res = await fetch(`${d.url}/ui`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const rule of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"]) assert.ok(csp.includes(rule), `${rule} in ${csp}`);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const html = await res.text();
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)/, 'every script is a file');
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handlers');
    const again = await fetch(`${d.url}/ui`, { headers: { 'if-none-match': res.headers.get('etag')! } });
    assert.equal(again.status, 304);
    const js = await fetch(`${d.url}/ui/js/main.js`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
    assert.doesNotMatch(await js.text(), /sourceMappingURL/);
    assert.equal((await fetch(`${d.url}/ui/js/nope.js`)).status, 404);
    assert.equal((await fetch(`${d.url}/ui/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8');
  });

  test('a tar the daemon cannot build: its message and hint on the page, nothing stored', async () => {
    await page.goto(`${d.url}/ui`);
    await page.locator('#dash').waitFor();
    const dir = mkdtempSync(join(tmpdir(), 'unik-ui-bad-'));
    writeFileSync(join(dir, 'README.txt'), 'no program here\n');
    const tar = execFileSync('tar', ['-cf', '-', '-C', dir, '.']);
    rmSync(dir, { recursive: true, force: true });
    await page.setInputFiles('#build-tar', { name: 'notes.tar', mimeType: 'application/x-tar', buffer: tar });
    assert.equal(await page.inputValue('#build-name'), 'notes', 'named after the file');
    await page.click('#build-submit');
    await page.locator('#build-result.bad').waitFor({ timeout: 60_000 });
    assert.match((await page.textContent('#build-result')) ?? '', /^✗ .*language/i);
    assert.deepEqual((await d.api('GET', '/images')).json, []);
    // the refusal came before the stream: the browser logs the 4xx, and nothing else
    assert.deepEqual(errors.splice(0).map((e) => e.replace(/\(.*\)/, '')), ['console: Failed to load resource: the server responded with a status of 400 ']);
    await page.fill('#build-name', '');
  });

  test('build examples/go-http from its folder: the steps stream in while it builds, then the image', async () => {
    await page.setInputFiles('#build-folder', join(ROOT, 'examples', 'go-http'));
    assert.equal(await page.inputValue('#build-name'), 'go-http', 'named after the folder');
    await page.click('#build-submit');
    // a daemon step is on the page while the result is not: the answer streams
    await page.waitForFunction(() => document.querySelectorAll('#build-log li.progress').length > 0 && !document.querySelector('#build-result')!.textContent, undefined, { timeout: 300_000, polling: 50 });
    await page.locator('#build-result.ok, #build-result.bad').waitFor({ timeout: 900_000 });
    assert.match((await page.textContent('#build-result')) ?? '', /✓ built go-http: go/, await page.textContent('#build-log') ?? '');
    const steps = await page.locator('#build-log li.progress').count();
    assert.ok(steps >= 2, `${steps} progress lines`);
    await page.locator('#images tbody tr[data-name="go-http"]').waitFor();
    await shot(page, 'build.png', '#build');
    const images = (await d.api('GET', '/images')).json as { Name: string; Language: string }[];
    assert.deepEqual(images.map((i) => [i.Name, i.Language]), [['go-http', 'go']]);
  });

  test('a page of another origin cannot run the image, read the API, or frame the dashboard', async () => {
    const run = JSON.stringify({ ImageName: 'go-http', InstanceName: 'xo-fetch' });
    const foreign = await serveForeignPage(`<!doctype html><html><body><iframe name="sink"></iframe><iframe id="framed" src="${d.url}/ui"></iframe><script>
const D = ${JSON.stringify(d.url)};
const results = {};
const settle = (name, p) => p.then((r) => (results[name] = 'answered:' + r.type + ':' + r.status), (e) => (results[name] = 'blocked:' + e.name));
(async () => {
  await Promise.all([
    settle('run', fetch(D + '/instances/run', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: ${JSON.stringify(run)} })),
    settle('runCors', fetch(D + '/instances/run', { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(run)} })),
    settle('read', fetch(D + '/instances')),
    settle('page', fetch(D + '/ui')),
  ]);
  // the classic text/plain form that makes a JSON body
  const f = document.createElement('form');
  f.method = 'POST'; f.enctype = 'text/plain'; f.action = D + '/instances/run'; f.target = 'sink';
  const i = document.createElement('input');
  i.name = '{"ImageName":"go-http","InstanceName":"xo-form","x":"'; i.value = '"}';
  f.appendChild(i);
  document.body.appendChild(f);
  const loaded = new Promise((r) => (document.querySelector('iframe[name=sink]').onload = r));
  f.submit();
  await Promise.race([loaded, new Promise((r) => setTimeout(r, 3000))]);
  window.results = results;
})();
</script></body></html>`);
    const attacker = await openPage(browser, []);
    try {
      await attacker.goto(foreign.url);
      const results = await pageResults(attacker);
      assert.equal(results.read, 'blocked:TypeError', JSON.stringify(results));
      assert.equal(results.page, 'blocked:TypeError', JSON.stringify(results));
      assert.equal(results.runCors, 'blocked:TypeError', JSON.stringify(results));
      assert.match(results.run ?? '', /^answered:opaque/, JSON.stringify(results));
      // the framed dashboard never came up: refused (cross-site), and not framable anyway
      for (const frame of attacker.frames().filter((f) => f !== attacker.mainFrame())) {
        const dash = await frame.locator('#dash').count().catch(() => 0);
        assert.equal(dash, 0, `a frame at ${frame.url()} shows the dashboard`);
      }
    } finally {
      await attacker.close();
      foreign.close();
    }
    await sleep(1000);
    assert.deepEqual((await d.api('GET', '/instances')).json, [], 'no instance was made');
    // a rebinding name for 127.0.0.1 gets the dashboard refused, so no same-origin page of its own
    const rebound = await browser.newPage();
    const res = await rebound.goto(`http://rebind.test:${d.port}/ui`);
    assert.equal(res?.status(), 403);
    assert.match(await rebound.content(), /UNIK_ERR_FORBIDDEN_HOST/);
    await rebound.close();
  });

  test('run it with a published port: running, pong, and the app\'s banner in the live console', async () => {
    await page.selectOption('#run-image', 'go-http');
    await page.fill('#run-name', 'web');
    await page.fill('#run-ports', `${port}:8080`);
    await page.fill('#run-env', 'KEY=from-the-page');
    await page.click('#run-submit');
    await page.locator('#instances tbody tr[data-name="web"][data-state="running"]').waitFor({ timeout: 180_000 });
    assert.equal(await httpUntil(app('/ping_test')), 'pong');
    assert.equal(await httpUntil(app('/env_test')), 'from-the-page');
    assert.equal(await row('web').locator(`a[href="http://127.0.0.1:${port}/"]`).count(), 1, 'its published port is a link');
    await shot(page, 'dashboard.png');
    await row('web').getByRole('button', { name: 'Console' }).click();
    await page.waitForFunction(() => document.querySelector('#console-text')!.textContent!.includes('go-http listening on :8080'), undefined, { timeout: 60_000 });
    // the console follows: a line the app prints now shows up without reopening it
    assert.equal(await httpUntil(app('/log_test?line=hello-from-the-test')), 'logged');
    await page.waitForFunction(() => document.querySelector('#console-text')!.textContent!.includes('hello-from-the-test'), undefined, { timeout: 30_000 });
    await shot(page, 'console.png');
  });

  test('a hostile app\'s output shows as text: HTML, terminal escapes and bidi overrides do nothing', async () => {
    const line = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> \x1b[31mred\x1b[0m \x1b]0;owned-title\x07\x1b]8;;http://evil.test/\x07link\x1b]8;;\x07 \x1b[2J\u202eabc bell\x07 end-of-hostile';
    assert.equal(await httpUntil(app(`/log_test?line=${encodeURIComponent(line)}`)), 'logged');
    await page.waitForFunction(() => document.querySelector('#console-text')!.textContent!.includes('end-of-hostile'), undefined, { timeout: 30_000 });
    const text = await consoleText();
    assert.ok(text.includes('<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> red link \ufffdabc bell\u2407 end-of-hostile'), JSON.stringify(text.slice(-300)));
    assert.doesNotMatch(text, /\x1b/);
    assert.equal(await page.locator('#console-text *').count(), 0, 'the console holds text nodes only');
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
    assert.equal(await page.title(), 'unik');
  });

  test('stop, start and delete through the page', async () => {
    await row('web').getByRole('button', { name: 'Stop' }).click();
    await page.locator('#instances tbody tr[data-name="web"][data-state="stopped"]').waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector('#console-status')!.textContent!.includes('not running'), undefined, { timeout: 10_000 });
    assert.ok(await refused(app('/ping_test')), 'stopped: its port is closed');

    await row('web').getByRole('button', { name: 'Start' }).click();
    await page.locator('#instances tbody tr[data-name="web"][data-state="running"]').waitFor({ timeout: 180_000 });
    assert.equal(await httpUntil(app('/ping_test')), 'pong');
    // the console follows again: the whole log, the new run's banner after the first one's
    await page.waitForFunction(() => document.querySelector('#console-text')!.textContent!.split('go-http listening on :8080').length === 3, undefined, { timeout: 60_000 });
    assert.equal(await page.textContent('#console-status'), 'following…');

    const del = row('web').getByRole('button', { name: 'Delete' });
    await del.click();
    await row('web').getByRole('button', { name: 'Delete?' }).click();
    await row('web').waitFor({ state: 'detached', timeout: 60_000 });
    assert.ok(await page.locator('#console').isHidden(), 'its console closed with it');
    assert.deepEqual((await d.api('GET', '/instances')).json, []);
    assert.ok(await refused(app('/ping_test')));
  });

  test('delete the image through the page', async () => {
    const img = page.locator('#images tbody tr[data-name="go-http"]');
    await img.getByRole('button', { name: 'Delete' }).click();
    await img.getByRole('button', { name: 'Delete?' }).click();
    await img.waitFor({ state: 'detached', timeout: 30_000 });
    assert.deepEqual((await d.api('GET', '/images')).json, []);
  });

  test('the page logged no errors and broke no CSP rule', () => {
    assert.deepEqual(errors, []);
  });
});

describe('a daemon with a token: the dashboard asks for it', () => {
  const token = `ui-token-${process.pid}-${Date.now()}`;
  const d = new Daemon();
  let browser: Browser;
  before(async () => {
    d.env.UNIK_API_TOKEN = token;
    await d.start();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await d.destroy();
  });

  test('without it: the prompt, and the API answers the page 401; only the exact files are open', async () => {
    const errors: string[] = [];
    const page = await openPage(browser, errors);
    await page.goto(`${d.url}/ui`);
    await page.locator('#login').waitFor();
    assert.ok(await page.locator('#dash').isHidden());
    await shot(page, 'login.png');
    const statuses = await page.evaluate(async () => Promise.all(['/instances', '/images', '/ui/js/main.js'].map(async (p) => (await fetch(p)).status)));
    assert.deepEqual(statuses, [401, 401, 200]);
    assert.equal((await fetch(`${d.url}/ui/nope`)).status, 401, 'a path under /ui that is not a file needs the token');

    await page.fill('#token', 'wrong');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error')!.textContent!.includes('refused'));
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');

    await page.fill('#token', token);
    await page.click('#login-form button[type=submit]');
    await page.locator('#dash').waitFor();
    await page.locator('#instances td.empty').waitFor();
    assert.ok(!page.url().includes(token), 'the token is in no URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('unik.token')), token);
    await page.reload();
    await page.locator('#dash').waitFor();
    assert.ok(await page.locator('#login').isHidden(), 'kept for the tab');

    const other = await browser.newPage();
    await other.goto(`${d.url}/ui`);
    await other.locator('#login').waitFor();
    await other.close();

    await page.click('#signout');
    await page.locator('#login').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.close();
    // the two 401s the page asked for on purpose, and those of the prompt, are all it logged
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
  });
});
