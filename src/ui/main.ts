// The dashboard's entry: the token prompt when the daemon wants one, the lists kept live by
// polling (instances every second, the rest every five and after each change), the run form
// and the instance actions. Every call goes through api.ts; every text through text nodes.
import type { ImageJson, InstanceJson, NetworkJson, RunRequest, VolumeJson } from '../api/types.js';
import { ApiError, call, describe, getJson, onUnauthorized, seg, setToken, token } from './api.js';
import { setupBuild } from './build.js';
import { ConsoleView } from './console.js';
import { $, busy, confirmButton, h } from './dom.js';
import { renderImages, renderInstances, renderNetworks, renderVolumes } from './lists.js';

const POLL_MS = 1000;
const SLOW_POLL_MS = 5000;

let started = false;
/** the sign-in the polling belongs to: a sign-out ends it, a new sign-in starts one loop */
let session = 0;
let signedOut = false;
let lastSlow = 0;
let flashTimer = 0;

function flash(text: string, info = false): void {
  const f = $('#flash');
  f.textContent = text;
  f.className = info ? 'info' : '';
  f.hidden = false;
  window.clearTimeout(flashTimer);
  flashTimer = window.setTimeout(() => (f.hidden = true), info ? 4000 : 12000);
}

function setLive(ok: boolean, text: string): void {
  const l = $('#live');
  l.className = `live ${ok ? 'ok' : 'down'}`;
  l.textContent = text;
}

/** Runs one action; its error shows in the flash, and the lists are read again either way. */
async function act(what: () => Promise<unknown>, done?: string): Promise<void> {
  try {
    await what();
    if (done) flash(done, true);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) flash(describe(e));
  }
  await refresh(true);
}

const consoleView = new ConsoleView();

/** A button that POSTs to an instance's action route (stop, start), disabled until it answers. */
function postButton(label: string, path: string): HTMLButtonElement {
  const b = h('button', { type: 'button' }, label);
  b.addEventListener('click', () => void busy(b, () => act(() => call(path, { method: 'POST' }))));
  return b;
}

const instanceActions = {
  console: (i: InstanceJson) => h('button', { type: 'button', onclick: () => consoleView.open(i) }, 'Console'),
  stop: (i: InstanceJson) => postButton('Stop', `/instances/${seg(i.Id)}/stop`),
  start: (i: InstanceJson) => postButton('Start', `/instances/${seg(i.Id)}/start`),
  remove: (i: InstanceJson) => confirmButton('Delete', 'Delete?', () => act(() => call(`/instances/${seg(i.Id)}?force=true`, { method: 'DELETE' }), `deleted ${i.Name}`)),
};

const imageActions = {
  run: (i: ImageJson) =>
    h('button', {
      type: 'button',
      onclick: () => {
        $<HTMLSelectElement>('#run-image').value = i.Name;
        $<HTMLInputElement>('#run-name').focus();
      },
    }, 'Run…'),
  remove: (i: ImageJson) => confirmButton('Delete', 'Delete?', () => act(() => call(`/images/${seg(i.Name)}`, { method: 'DELETE' }), `deleted image ${i.Name}`)),
};

/** Keeps the select's options equal to the values, without losing what was chosen. */
function syncOptions(select: HTMLSelectElement, values: string[], fixed: number): void {
  const now = Array.from(select.options).slice(fixed).map((o) => o.value);
  if (JSON.stringify(now) === JSON.stringify(values)) return;
  const chosen = select.value;
  while (select.options.length > fixed) select.remove(fixed);
  for (const v of values) select.add(h('option', { value: v }, v));
  if (values.includes(chosen) || Array.from(select.options).some((o) => o.value === chosen)) select.value = chosen;
}

async function refresh(all = false): Promise<void> {
  try {
    const instances = await getJson<InstanceJson[]>('/instances');
    renderInstances(instances, instanceActions);
    consoleView.update(instances);
    if (all || Date.now() - lastSlow > SLOW_POLL_MS) {
      lastSlow = Date.now();
      const [images, volumes, networks] = await Promise.all([getJson<ImageJson[]>('/images'), getJson<VolumeJson[]>('/volumes'), getJson<NetworkJson[]>('/networks')]);
      renderImages(images, imageActions);
      renderVolumes(volumes);
      renderNetworks(networks);
      syncOptions($<HTMLSelectElement>('#run-image'), images.map((i) => i.Name), 0);
      syncOptions($<HTMLSelectElement>('#run-network'), networks.map((n) => n.Name), 2);
    }
    setLive(true, `live · ${instances.filter((i) => i.State === 'running').length} running`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) setLive(false, `daemon unreachable: ${describe(e)}`);
  }
}

async function poll(mine: number): Promise<void> {
  if (signedOut || mine !== session) return;
  await refresh();
  window.setTimeout(() => void poll(mine), POLL_MS);
}

function showLogin(message = ''): void {
  signedOut = true;
  $('#dash').hidden = true;
  $('#login').hidden = false;
  $('#signout').hidden = true;
  setLive(false, 'signed out');
  const err = $('#login-error');
  err.textContent = message;
  err.hidden = !message;
  $<HTMLInputElement>('#token').focus();
}

function showDashboard(): void {
  signedOut = false;
  $('#login').hidden = true;
  $('#dash').hidden = false;
  $('#signout').hidden = !token();
  if (!started) {
    started = true;
    void loadCompilers();
  }
  const mine = ++session;
  void refresh(true).then(() => window.setTimeout(() => void poll(mine), POLL_MS));
}

async function loadCompilers(): Promise<void> {
  try {
    const names = await getJson<string[]>('/available_compilers');
    // base-language-provider; the language may have a dash (oci-image), which a folder cannot be
    const langs = [...new Set(names.map((n) => n.split('-').slice(1, -1).join('-')))].filter((l) => l && l !== 'oci-image').sort();
    syncOptions($<HTMLSelectElement>('#build-lang'), langs, 1);
  } catch {
    // the build still detects the language
  }
}

function setupLogin(): void {
  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('#token');
    const t = input.value.trim();
    input.value = '';
    setToken(t);
    void (async () => {
      try {
        await call('/instances');
        showDashboard();
      } catch (e) {
        setToken(null);
        showLogin(e instanceof ApiError && e.status === 401 ? 'the daemon refused that token' : describe(e));
      }
    })();
  });
  $('#signout').addEventListener('click', () => {
    setToken(null);
    consoleView.close();
    showLogin();
  });
}

function setupRun(): void {
  $('#run-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const submit = $<HTMLButtonElement>('#run-submit');
    void busy(submit, async () => {
      try {
        const env: Record<string, string> = {};
        for (const line of $<HTMLTextAreaElement>('#run-env').value.split('\n').map((l) => l.trim()).filter(Boolean)) {
          const eq = line.indexOf('=');
          if (eq <= 0) throw new Error(`env: "${line}" is not KEY=value`);
          env[line.slice(0, eq)] = line.slice(eq + 1);
        }
        const req: RunRequest = { ImageName: $<HTMLSelectElement>('#run-image').value, Env: env, Ports: $<HTMLInputElement>('#run-ports').value.split(/[\s,]+/).filter(Boolean) };
        if (!req.ImageName) throw new Error('build an image first');
        const name = $<HTMLInputElement>('#run-name').value.trim();
        if (name) req.InstanceName = name;
        const mem = $<HTMLInputElement>('#run-memory').value;
        if (mem) req.MemoryMb = Number(mem);
        const net = $<HTMLSelectElement>('#run-network').value;
        if (net) req.Network = net;
        // the new row says the rest
        await call('/instances/run', { method: 'POST', json: req });
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) flash(describe(e));
      }
      await refresh(true);
    });
  });
}

function main(): void {
  $('#daemon').textContent = location.host;
  onUnauthorized(() => showLogin(token() ? 'the daemon refused the token: give it again' : ''));
  setupLogin();
  setupRun();
  setupBuild((img) => {
    void refresh(true).then(() => ($<HTMLSelectElement>('#run-image').value = img.Name));
  });
  // the first read tells whether the daemon wants a token: a 401 shows the prompt instead
  void call('/instances').then(showDashboard, (e: unknown) => {
    if (!(e instanceof ApiError && e.status === 401)) {
      showDashboard();
      flash(describe(e));
    }
  });
}

main();
