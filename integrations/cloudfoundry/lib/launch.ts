// The web process of a unik droplet (deps/IDX/bin/unik-cf-launch runs it with deps/IDX as its
// argument). It runs the app's image as a unikernel on the daemon that built it, with the app's
// environment; the daemon publishes the app's port on its host, and this process relays CF's
// $PORT to it once the app answers there, so CF's router and health check reach the unikernel
// where they expect the app. The console streams to stdout (the app's log in CF). On SIGTERM
// (CF's stop; SIGKILL follows 10 s later) the instance is stopped in order and removed, and this
// process exits with the app's status. The log stream is opened with delete=true: if this process
// dies without cleaning up, the daemon removes the instance when the stream drops.
import { randomInt, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InstanceJson } from '../../../src/api/types.js';
import { UnikApiError, type UnikClient } from '../../../src/client/index.js';
import { BuildpackError, clientFor, daemonFrom, explain, instanceName, publishAddress, servicesForGuest, type Env } from './common.js';

/** CF sends SIGKILL 10 s after SIGTERM: the app gets 7 of them, removing the instance the rest */
const STOP_SECONDS = 7;
const DEFAULT_START_SECONDS = 180;
const PORT_TRIES = 20;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

interface LaunchConfig {
  image: string;
  daemon: string;
  app: string;
  appPort: number;
}

const log = (msg: string) => process.stderr.write(`unik-cf: ${msg}\n`);

function portNumber(v: string | undefined, what: string): number {
  const n = /^\d{1,5}$/.test(v ?? '') ? Number(v) : 0;
  if (n < 1 || n > 65535) throw new BuildpackError(`${what} ${JSON.stringify((v ?? '').slice(0, 50))} is not a port number`);
  return n;
}

async function readConfig(dir: string): Promise<LaunchConfig> {
  let c: Partial<LaunchConfig>;
  try {
    c = JSON.parse(await readFile(join(dir, 'launch.json'), 'utf8')) as Partial<LaunchConfig>;
  } catch (e) {
    throw new BuildpackError(`cannot read ${join(dir, 'launch.json')}: ${(e as Error).message}`, 'the droplet was not staged by the unik buildpack\'s finalize');
  }
  if (typeof c.image !== 'string' || !NAME.test(c.image) || typeof c.daemon !== 'string' || typeof c.app !== 'string' || !Number.isInteger(c.appPort))
    throw new BuildpackError(`${join(dir, 'launch.json')} is malformed`);
  return c as LaunchConfig;
}

/**
 * The container's environment minus what belongs to the container (paths, the shell, unik's own
 * settings and token, the unik binding in VCAP_SERVICES); PORT is the guest's port.
 */
export function guestEnv(env: Env, appPort: number): Record<string, string> {
  const containerOnly = new Set(['HOME', 'PWD', 'OLDPWD', 'TMPDIR', 'PATH', 'SHLVL', '_', 'USER', 'SHELL', 'TERM', 'DEPS_DIR', 'PORT']);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || v.includes('\0') || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || containerOnly.has(k) || /^(UNIK_|LD_|BASH_)/.test(k)) continue;
    out[k] = v;
  }
  const vcapServices = servicesForGuest(env);
  if (vcapServices !== undefined) out.VCAP_SERVICES = vcapServices;
  out.PORT = String(appPort);
  if (out.VCAP_APP_PORT !== undefined) out.VCAP_APP_PORT = String(appPort);
  // CF's launcher writes the container's port into VCAP_APPLICATION too; the app's is the guest's
  try {
    const app = JSON.parse(out.VCAP_APPLICATION ?? '') as unknown;
    if (typeof app === 'object' && app !== null && !Array.isArray(app) && 'port' in app) out.VCAP_APPLICATION = JSON.stringify({ ...app, port: appPort });
  } catch {
    // not JSON: passed as it is
  }
  return out;
}

/** MEMORY_LIMIT (e.g. 256M, 1G, 512m) in MB; undefined (the image's default) when absent or unreadable. */
export function memoryMb(v: string | undefined): number | undefined {
  const m = /^(\d{1,9})\s*([KMGT]?)B?$/i.exec(v?.trim() ?? '');
  if (!m) return undefined;
  const mb = Number(m[1]) * ({ K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[m[2]!.toUpperCase() || 'M'] ?? 1);
  return mb >= 1 ? Math.floor(mb) : undefined;
}

/** UNIK_CF_PORTS=MIN-MAX: the daemon host's ports the published app port is picked from. */
function hostPorts(env: Env): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(env.UNIK_CF_PORTS ?? '20000-29999');
  const [min, max] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (min < 1 || max > 65535 || min > max) throw new BuildpackError(`UNIK_CF_PORTS ${JSON.stringify(env.UNIK_CF_PORTS)} is not MIN-MAX`);
  return [min, max];
}

/** Runs the instance on a free host port of the range (the daemon says 409 PORT_IN_USE for a taken one). */
async function runInstance(client: UnikClient, cfg: LaunchConfig, req: { name: string; env: Record<string, string>; memory: number | undefined; bind: string; ports: [number, number] }): Promise<{ inst: InstanceJson; hostPort: number }> {
  for (let i = 0; i < PORT_TRIES; i++) {
    const hostPort = randomInt(req.ports[0], req.ports[1] + 1);
    try {
      const inst = await client.instances.run({
        ImageName: cfg.image,
        InstanceName: req.name,
        Env: req.env,
        Ports: [`${req.bind}:${hostPort}:${cfg.appPort}`],
        ...(req.memory ? { MemoryMb: req.memory } : {}),
      });
      return { inst, hostPort };
    } catch (e) {
      if (e instanceof UnikApiError && e.code === 'UNIK_ERR_PORT_IN_USE') continue;
      throw e;
    }
  }
  throw new BuildpackError(`no free port on the daemon's host in ${req.ports.join('-')} after ${PORT_TRIES} tries`, 'widen UNIK_CF_PORTS');
}

/** Until the instance runs and its app answers HTTP (any status) on the published port, or `quit()`. */
async function untilAnswers(client: UnikClient, id: string, url: string, deadline: number, quit: () => boolean): Promise<void> {
  while (!quit()) {
    if (Date.now() > deadline) throw new BuildpackError(`the app did not answer HTTP at ${url} in time`, 'raise UNIK_CF_START_TIMEOUT (seconds), or see its console above');
    const inst = await client.instances.get(id);
    if (inst.State === 'stopped' || inst.State === 'error') throw new BuildpackError(`the unikernel ${inst.State === 'error' ? `failed: ${inst.Error}` : `stopped with status ${inst.ExitCode}`}`);
    if (inst.State === 'running') {
      // QEMU's forwarder accepts before the guest does: an HTTP answer is the proof
      const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      if (res) {
        await res.body?.cancel();
        return;
      }
    }
    await sleep(250);
  }
}

/** Listens on CF's $PORT (all addresses, as CF expects) and pipes each connection to the published port. */
async function relay(port: number, host: string, hostPort: number): Promise<Server> {
  const server = createServer((down) => {
    const up = connect({ host, port: hostPort });
    const drop = () => {
      down.destroy();
      up.destroy();
    };
    down.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    down.pipe(up);
    up.pipe(down);
  });
  server.listen(port, '0.0.0.0');
  await once(server, 'listening');
  return server;
}

/** Console to stdout (without the NUL keep-alives a following daemon may send); resolves when the stream ends. */
async function pump(body: ReadableStream<Uint8Array>, keepTail: (text: string) => void): Promise<void> {
  try {
    for await (const chunk of body) {
      const bytes = chunk.includes(0) ? chunk.filter((b) => b !== 0) : chunk;
      keepTail(Buffer.from(bytes).toString('utf8'));
      if (bytes.length && !process.stdout.write(bytes)) await once(process.stdout, 'drain');
    }
  } catch {
    // aborted, or the daemon went away: the end of the stream either way
  }
}

/** The app's status: the daemon's record, else the last line the guest init wrote on the console. */
async function exitStatus(client: UnikClient, id: string, tail: () => string, streamEnd: Promise<void>): Promise<number | undefined> {
  const inst = await client.instances.get(id).catch(() => undefined);
  if (inst && inst.State !== 'running' && inst.State !== 'pending' && inst.ExitCode !== null) return inst.ExitCode;
  // the log stream's end removes the instance (delete=true): its last lines hold what init said
  await Promise.race([streamEnd, sleep(3000)]);
  const said = [...tail().matchAll(/^unik-init: app exited with status (\d{1,3})\s*$/gm)].pop();
  return said ? Number(said[1]) : undefined;
}

async function remove(client: UnikClient, id: string): Promise<void> {
  try {
    await client.instances.delete(id, true);
  } catch (e) {
    if (!(e instanceof UnikApiError && e.status === 404)) log(`could not remove the instance: ${explain(e)}`);
  }
}

async function main(): Promise<number> {
  const dir = process.argv[2];
  if (!dir) throw new BuildpackError('usage: launch.js DEPS_DIR/IDX');
  const env = process.env;
  // everything is checked before anything reaches the daemon
  const port = portNumber(env.PORT, 'PORT');
  const cfg = await readConfig(dir);
  portNumber(String(cfg.appPort), 'the app port');
  const daemon = daemonFrom(env, cfg.daemon);
  const client = clientFor(daemon, env);
  const publish = publishAddress(env, cfg.daemon);
  const req = { name: instanceName(cfg.app, env.CF_INSTANCE_GUID || randomUUID()), env: guestEnv(env, cfg.appPort), memory: memoryMb(env.MEMORY_LIMIT), bind: publish.bind, ports: hostPorts(env) };
  const startSeconds = Number(env.UNIK_CF_START_TIMEOUT) > 0 ? Number(env.UNIK_CF_START_TIMEOUT) : DEFAULT_START_SECONDS;

  let stopping = false;
  let wake = () => {};
  const stopAsked = new Promise<void>((r) => (wake = r));
  for (const sig of ['SIGTERM', 'SIGINT'] as const)
    process.on(sig, () => {
      if (!stopping) log(`${sig}: stopping ${req.name}`);
      stopping = true;
      wake();
    });

  log(`running ${cfg.image} as ${req.name} on ${daemon.address}, guest port ${cfg.appPort} published on ${publish.bind}`);
  const { inst, hostPort } = await runInstance(client, cfg, req);
  const logs = new AbortController();
  let tail = '';
  let streamEnd: Promise<void>;
  try {
    streamEnd = pump(await client.instances.logs(inst.Id, { follow: true, deleteOnClose: true, signal: logs.signal }), (t) => (tail = (tail + t).slice(-16384)));
  } catch (e) {
    await remove(client, inst.Id);
    throw e;
  }
  let ended = false;
  void streamEnd.then(() => (ended = true));

  let server: Server | undefined;
  let failed = false;
  try {
    const url = `http://${publish.connect}:${hostPort}/`;
    await Promise.race([untilAnswers(client, inst.Id, url, Date.now() + startSeconds * 1000, () => stopping || ended), stopAsked, streamEnd]);
    if (!stopping && !ended) {
      server = await relay(port, publish.connect, hostPort);
      log(`${cfg.app} answers on port ${port} (relayed to ${publish.connect}:${hostPort})`);
    }
    await Promise.race([stopAsked, streamEnd]);
  } catch (e) {
    log(explain(e));
    failed = true;
  }
  server?.close();
  if (!ended) await client.instances.stop(inst.Id, STOP_SECONDS).catch((e: unknown) => log(`stop: ${explain(e)}`));
  const status = await exitStatus(client, inst.Id, () => tail, streamEnd);
  await remove(client, inst.Id);
  logs.abort();
  log(`the app exited with status ${status ?? 'unknown'}; ${req.name} removed`);
  return status ?? (failed || !stopping ? 1 : 0);
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (e: unknown) => {
    log(explain(e));
    process.exit(e instanceof BuildpackError ? 2 : 1);
  },
);
