// Kubernetes without Kubernetes: the CRI calls kubelet makes, issued over gRPC to a real
// containerd (own config, sockets and CNI bridge in a temp dir), for (a) an ordinary runc pod
// running the Go example as a static binary, and (b) a pod with runtime_handler "unik" whose
// container is the same app as a unikernel, booted by unik-runc under QEMU in the pod's netns.
// CRI_TIMING=1 adds the StartContainer → first HTTP 200 measurement (median of 5 of each).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon, ROOT } from './harness.js';
import { Registry } from './registry.js';
import { Containerd } from './containerd.js';
import { CriClient, CriError, type PodSandboxConfig } from './cri-client.js';
import { pushGoHttpImage, pushPauseImage } from './pause/images.js';

const UNIK_RUNC = join(ROOT, 'bin', 'unik-runc');
const registry = new Registry();
const daemon = new Daemon();
const logs = mkdtempSync(join(tmpdir(), 'unik-cri-logs-'));
let ctrd: Containerd;
let cri: CriClient;
let runcImage = '';
let unikImage = '';
const pods = new Set<string>();

before(async () => {
  await Promise.all([registry.start(), daemon.start()]);
  const pause = await pushPauseImage(registry.host);
  runcImage = await pushGoHttpImage(registry.host);
  const build = await daemon.cli(['push', 'go-http', join(ROOT, 'examples/go-http')]);
  assert.equal(build.code, 0, build.stderr);
  unikImage = `${registry.host}/unik-test/go-http:unik`;
  const push = await daemon.cli(['hub', 'push', 'go-http', unikImage]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  ctrd = new Containerd({ unikRunc: UNIK_RUNC, registryHost: registry.host, sandboxImage: pause, cni: true });
  await ctrd.start();
  cri = new CriClient(ctrd.socket);
});

after(async () => {
  for (const id of pods) {
    await cri?.stopPodSandbox(id).catch(() => undefined);
    await cri?.removePodSandbox(id).catch(() => undefined);
  }
  cri?.close();
  if (process.exitCode) console.error(daemon.log());
  await ctrd?.stop();
  await Promise.all([daemon.destroy(), registry.destroy()]);
  rmSync(logs, { recursive: true, force: true });
});

/** What went wrong, from containerd's log and every runtime log.json left in the bundles. */
function diagnostics(): string {
  const out = [
    '--- containerd log (warnings and errors) ---',
    ...ctrd.logs(200_000).split('\n').filter((l) => /level=(error|warning|fatal)/.test(l)).slice(-40),
  ];
  const tasks = join(ctrd.state, 'io.containerd.runtime.v2.task', 'k8s.io');
  if (existsSync(tasks)) {
    for (const id of readdirSync(tasks)) {
      const log = join(tasks, id, 'log.json');
      if (existsSync(log)) out.push(`--- ${log} ---`, readFileSync(log, 'utf8').slice(-4000));
    }
  }
  return out.join('\n');
}

function podConfig(name: string): PodSandboxConfig {
  const uid = randomUUID();
  const dir = join(logs, `default_${name}_${uid}`);
  mkdirSync(dir, { recursive: true });
  return {
    metadata: { name, uid, namespace: 'default', attempt: 0 },
    hostname: name,
    logDirectory: dir,
    labels: { 'io.kubernetes.pod.name': name, 'sh.unik.test': 'cri' },
    linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

interface Pod {
  id: string;
  config: PodSandboxConfig;
  ip: string;
  netns: string;
}

async function runPod(name: string, handler: string): Promise<Pod> {
  const config = podConfig(name);
  const id = await cri.runPodSandbox(config, handler, 180_000);
  pods.add(id);
  const st = await cri.podSandboxStatus(id, true);
  assert.equal(st.status.state, 'SANDBOX_READY');
  assert.equal(st.status.runtimeHandler, handler);
  const ip = st.status.network?.ip ?? '';
  assert.ok(ip.startsWith(ctrd.subnet.replace(/0\/24$/, '')), `pod IP ${ip} from the CNI range ${ctrd.subnet}`);
  const info = JSON.parse(st.info.info ?? '{}');
  const netns = (info.runtimeSpec?.linux?.namespaces ?? []).find((n: { type: string; path?: string }) => n.type === 'network')?.path ?? '';
  return { id, config, ip, netns };
}

async function removePod(pod: Pod): Promise<void> {
  await cri.stopPodSandbox(pod.id);
  await cri.removePodSandbox(pod.id);
  pods.delete(pod.id);
}

/** Polls until the URL answers 200; returns the body and when it first did. */
async function firstOk(url: string, deadlineMs: number): Promise<{ body: string; at: number }> {
  const until = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200) return { body, at: performance.now() };
      last = `status ${res.status}`;
    } catch (e) {
      last = String((e as Error).cause ?? e);
    }
    await sleep(10);
  }
  throw new Error(`${url} did not answer 200 within ${deadlineMs} ms (${last})`);
}

async function waitState(id: string, state: string, deadlineMs = 60_000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const s = (await cri.containerStatus(id)).status;
    if (s.state === state || Date.now() > until) return s;
    await sleep(100);
  }
}

/** Creates and starts the app container in the pod; returns its id and ms from StartContainer to the first 200 on pod IP:8080. */
async function startApp(pod: Pod, image: string, name: string): Promise<{ id: string; ms: number; body: string }> {
  const ref = await cri.pullImage(image, pod.config);
  assert.match(ref, /^sha256:[0-9a-f]{64}$/);
  const id = await cri.createContainer(
    pod.id,
    { metadata: { name, attempt: 0 }, image: { image }, envs: [{ key: 'KEY', value: `from-cri-${name}` }], logPath: `${name}/0.log`, linux: { resources: { memoryLimitInBytes: 256 << 20 } } },
    pod.config,
  );
  assert.equal((await cri.containerStatus(id)).status.state, 'CONTAINER_CREATED');
  const t0 = performance.now();
  await cri.startContainer(id, 180_000);
  const { body, at } = await firstOk(`http://${pod.ip}:8080/ping_test`, 120_000);
  return { id, ms: at - t0, body };
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
};
const isQemu = (pid: number) => /qemu-system/.test(cmdline(pid).split(' ')[0] ?? '');
const childrenOf = (pid: number) =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    });

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const qemuMentioning = (s: string) =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return argv.includes('qemu-system') && argv.includes(s);
      } catch {
        return false;
      }
    });

test('CRI: containerd answers Version and Status; the CNI network is ready', async () => {
  const v = await cri.version();
  assert.equal(v.runtimeName, 'containerd');
  assert.equal(v.runtimeApiVersion, 'v1');
  const conditions = Object.fromEntries((await cri.status()).conditions.map((c) => [c.type, c.status]));
  assert.deepEqual(conditions, { RuntimeReady: true, NetworkReady: true });
});

test('CRI (a): a runc pod with the pause sandbox runs the Go app as an ordinary container, reachable on the pod IP', async (t) => {
  const pod = await runPod('gohttp-runc', '');
  try {
    const app = await startApp(pod, runcImage, 'app');
    assert.equal(app.body, 'pong');
    t.diagnostic(`runc: StartContainer → first 200 in ${app.ms.toFixed(0)} ms`);
    assert.equal((await firstOk(`http://${pod.ip}:8080/env_test`, 5000)).body, 'from-cri-app', 'CRI envs reach the app');
    assert.equal((await cri.containerStatus(app.id)).status.state, 'CONTAINER_RUNNING');
    const listed = await cri.listContainers({ podSandboxId: pod.id });
    assert.deepEqual(listed.map((c) => [c.id, c.state]), [[app.id, 'CONTAINER_RUNNING']]);
    await cri.stopContainer(app.id, 10);
    const st = await waitState(app.id, 'CONTAINER_EXITED');
    assert.equal(st.state, 'CONTAINER_EXITED');
    assert.ok(st.finishedAt > 0);
    t.diagnostic(`runc: exit code after StopContainer ${st.exitCode} (${st.reason})`);
    assert.match(readFileSync(join(pod.config.logDirectory!, 'app', '0.log'), 'utf8'), /go-http listening on :8080/, 'the app stdout goes to the CRI log');
    await cri.removeContainer(app.id);
    await assert.rejects(cri.containerStatus(app.id), (e: CriError) => e.code === 5 /* NOT_FOUND */);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${diagnostics()}`);
  } finally {
    await removePod(pod).catch(() => undefined);
  }
  assert.ok(!(await cri.listPodSandbox()).some((p) => p.id === pod.id), 'the pod is gone');
  assert.ok(!pod.netns || !existsSync(pod.netns), `netns ${pod.netns} removed`);
});

test('CRI (b): runtime_handler "unik" boots the unikernel in the pod netns; the pod IP answers pong; everything is cleaned up', async (t) => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'runtime', 'main.js')), 'unik-runc is built (dist/src/runtime/main.js)');
  const linksBefore = new Set(readdirSync('/sys/class/net'));
  const pod = await runPod('gohttp-unik', 'unik');
  let vmPid = 0;
  let app: { id: string; ms: number; body: string } | undefined;
  try {
    app = await startApp(pod, unikImage, 'app');
    assert.equal(app.body, 'pong');
    t.diagnostic(`unik: StartContainer → first 200 in ${app.ms.toFixed(0)} ms`);
    const st = await cri.containerStatus(app.id, true);
    assert.equal(st.status.state, 'CONTAINER_RUNNING');
    const taskPid: number = JSON.parse(st.info.info ?? '{}').pid ?? 0;
    assert.ok(taskPid > 0, 'the container has a pid');
    // The container's process is the VM: QEMU itself, or unik-runc's monitor that owns it (its
    // descendant: a confined QEMU runs behind the wrappers that bind it to the monitor).
    const descendants = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
    vmPid = isQemu(taskPid) ? taskPid : (descendants(taskPid).find(isQemu) ?? 0);
    assert.ok(vmPid > 0, `the container's process ${taskPid} (${cmdline(taskPid)}) is QEMU or its parent`);
    t.diagnostic(`unik: task pid ${taskPid} (${cmdline(taskPid).split(' ')[0]}), QEMU pid ${vmPid}`);
    assert.equal((await firstOk(`http://${pod.ip}:8080/env_test`, 5000)).body, 'from-cri-app', 'CRI envs reach the guest');
    const listed = await cri.listContainers({ podSandboxId: pod.id });
    assert.deepEqual(listed.map((c) => [c.id, c.state]), [[app.id, 'CONTAINER_RUNNING']]);

    await cri.stopContainer(app.id, 10);
    const stopped = await waitState(app.id, 'CONTAINER_EXITED');
    assert.equal(stopped.state, 'CONTAINER_EXITED');
    assert.ok(stopped.finishedAt > 0);
    assert.equal(typeof stopped.exitCode, 'number');
    t.diagnostic(`unik: exit code after StopContainer ${stopped.exitCode} (${stopped.reason})`);
    assert.ok(!pidAlive(vmPid) || !isQemu(vmPid), 'the VM process is gone after StopContainer');
    const log = readFileSync(join(pod.config.logDirectory!, 'app', '0.log'), 'utf8');
    t.diagnostic(`unik: CRI log: ${JSON.stringify(log.slice(0, 300))}`);
    assert.match(log, /go-http listening on :8080/, 'the guest console reaches the CRI log');
    await cri.removeContainer(app.id);
    await assert.rejects(cri.containerStatus(app.id), (e: CriError) => e.code === 5);
    await removePod(pod);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${diagnostics()}`);
  } finally {
    await removePod(pod).catch(() => undefined);
  }
  assert.ok(!(await cri.listPodSandbox()).some((p) => p.id === pod.id), 'the pod is gone from ListPodSandbox');
  assert.deepEqual(await cri.listContainers({ podSandboxId: pod.id }), []);
  assert.deepEqual(qemuMentioning(app.id), [], 'no qemu process of this container');
  if (vmPid) assert.ok(!pidAlive(vmPid) || !isQemu(vmPid), 'no VM left');
  assert.ok(!pod.netns || !existsSync(pod.netns), `netns ${pod.netns} removed (and with it the tap device)`);
  assert.deepEqual(ctrd.leftovers(), [], 'no netns mount or shim left');
  const newLinks = readdirSync('/sys/class/net').filter((l) => !linksBefore.has(l) && l !== ctrd.bridge && /^(tap|veth|unik)/.test(l));
  assert.deepEqual(newLinks, [], 'no tap or veth device left on the host');
  const bundle = join(ctrd.state, 'io.containerd.runtime.v2.task', 'k8s.io', app.id);
  assert.ok(!existsSync(bundle), 'the bundle is removed');
});

test('CRI: an unknown runtime handler is refused with a clear error and leaves no pod', async () => {
  const before = (await cri.listPodSandbox()).length;
  await assert.rejects(cri.runPodSandbox(podConfig('nohandler'), 'no-such-handler'), (e: CriError) => /no runtime for "no-such-handler" is configured/.test(e.details));
  assert.equal((await cri.listPodSandbox()).length, before);
});

// A measurement, not a check: ten more pods (~40 s) only to print the figure the issue asks
// for. The suite checks behaviour and asserts no timings (performance lives in bench/), so it
// runs on request: CRI_TIMING=1 node --test dist/test/integration/cri.test.js
test('CRI timing: StartContainer → first HTTP 200, median of 5, runc vs unik', { skip: process.env.CRI_TIMING !== '1' && 'a measurement for the closing note, not a check: set CRI_TIMING=1' }, async (t) => {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const result: Record<string, number[]> = { runc: [], unik: [] };
  for (let i = 0; i < 5; i++) {
    for (const [handler, image] of [['runc', runcImage], ['unik', unikImage]] as const) {
      const pod = await runPod(`time-${handler}-${i}`, handler === 'runc' ? '' : 'unik');
      try {
        const app = await startApp(pod, image, 'app');
        result[handler]!.push(app.ms);
        await cri.stopContainer(app.id, 5);
        await cri.removeContainer(app.id);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${diagnostics()}`);
      } finally {
        await removePod(pod).catch(() => undefined);
      }
    }
  }
  for (const [h, xs] of Object.entries(result)) t.diagnostic(`${h}: StartContainer → first 200: median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(JSON.stringify({ criStartToFirst200Ms: Object.fromEntries(Object.entries(result).map(([h, xs]) => [h, { median: Math.round(median(xs)), samples: xs.map(Math.round) }])) }));
});
