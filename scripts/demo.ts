// `npm run demo`: builds examples/go-http into a unikernel, runs it, prints where to reach it.
// Starts a daemon on 127.0.0.1:3000 (or UNIK_HOST) if none answers, and leaves it running.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnikClient, DaemonUnreachableError, packDirectory } from '../src/client/index.js';
import { unikPaths } from '../src/model/paths.js';

const ROOT = resolve(import.meta.dirname, '../..');
const target = process.env.UNIK_HOST || '127.0.0.1:3000';
const client = new UnikClient(target, { token: process.env.UNIK_API_TOKEN });
const say = (s: string) => console.log(`demo: ${s}`);

async function ensureDaemon(): Promise<void> {
  try {
    await client.availableProviders();
    say(`using the daemon at ${client.baseUrl}`);
    return;
  } catch (e) {
    if (!(e instanceof DaemonUnreachableError)) throw e;
  }
  const paths = unikPaths();
  mkdirSync(paths.home, { recursive: true });
  const logFile = join(paths.home, 'daemon.log');
  const port = target.split(':').pop()!;
  const log = openSync(logFile, 'a');
  const d = spawn(process.execPath, [join(ROOT, 'bin/unik'), 'daemon', '--port', port], { detached: true, stdio: ['ignore', log, log] });
  d.unref();
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    if (await client.availableProviders().then(() => true, () => false)) {
      say(`started a daemon on ${client.baseUrl} (pid ${d.pid}, log ${logFile})`);
      return;
    }
  }
  throw new Error(`the daemon did not come up; see ${logFile}`);
}

async function freePort(preferred: number): Promise<number> {
  const tryPort = (p: number) =>
    new Promise<number | null>((res) => {
      const s = createServer();
      s.once('error', () => res(null));
      s.listen(p, '127.0.0.1', () => s.close(() => res((s.address() as { port: number } | null)?.port ?? p)));
    });
  return (await tryPort(preferred)) ?? (await tryPort(0))!;
}

await ensureDaemon();
const old = await client.instances.get('demo').catch(() => undefined);
if (old) {
  say('removing the previous demo instance');
  await client.instances.delete('demo', true);
}
const tarball = await packDirectory(join(ROOT, 'examples/go-http'));
try {
  say('building examples/go-http into the unikernel image "go-http"');
  const image = await client.images.build({ name: 'go-http', tarPath: tarball, language: 'go', force: true }, (p) =>
    console.log(`  [${p.Step}] ${p.Message}${p.Percent === undefined ? '' : ` ${p.Percent}%`}`),
  );
  say(`image ${image.Name} (${image.Id.slice(0, 12)}): ${(image.SizeBytes / 1e6).toFixed(2)} MB, kernel ${image.KernelConfigHash}`);
} finally {
  rmSync(tarball, { force: true });
}

const port = await freePort(8080);
const t0 = Date.now();
const inst = await client.instances.run({ ImageName: 'go-http', InstanceName: 'demo', Env: { KEY: 'hello from the host' }, Ports: [`${port}:8080`] });
const url = `http://127.0.0.1:${port}`;
let answer = '';
for (let i = 0; i < 600 && !answer; i++) {
  try {
    // short attempts: a connection opened before the guest network is up waits for slirp's SYN retry
    const r = await fetch(`${url}/ping_test`, { signal: AbortSignal.timeout(250) });
    if (r.ok) answer = await r.text();
  } catch {
    await sleep(100);
  }
}
if (answer !== 'pong') {
  const now = await client.instances.get(inst.Id);
  console.error(`demo: the unikernel did not answer (state ${now.State}${now.Error ? `: ${now.Error}` : ''}); see: bin/unik logs demo`);
  process.exit(1);
}
const env = await (await fetch(`${url}/env_test`)).text();
const now = await client.instances.get(inst.Id);
say(`instance demo is ${now.State} (${now.Accel || 'accel ?'}), answered after ${((Date.now() - t0) / 1000).toFixed(2)} s`);
// npm run demo sets it: the whole first run, set-up and kernel build included
const demoStarted = Number(process.env.UNIK_DEMO_STARTED);
if (demoStarted > 0) say(`from \`npm run demo\` to this answer: ${((Date.now() - demoStarted) / 1000).toFixed(1)} s`);
say(`${url}/ping_test → ${answer}`);
say(`${url}/env_test  → ${env}`);
console.log(`\nThe unikernel is reachable at ${url}\n  logs:   bin/unik logs demo\n  stop:   bin/unik stop demo\n  remove: bin/unik rm -f demo\n  or all of it in a browser: ${client.baseUrl}/ui`);
