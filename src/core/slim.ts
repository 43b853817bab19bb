import { lstat, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RootEntry } from '../compilers/types.js';
import { buildFailed, invalid } from '../model/errors.js';
import type { ImageRecord, InstanceRecord, ProgressFn } from '../model/types.js';
import type { Provider } from '../providers/types.js';
import { newId } from './ids.js';

// `--slim`: a container image carries a whole distribution, and the app touches a small part of
// it. The full image is booted once as a throwaway VM whose init records every file the app
// opens (fanotify, guest/init/init.c), while a probe the user names exercises it; the slim
// image keeps those files, every directory and symlink, /etc, and what --keep names.
//
// The profiling VM has no record: its folder under instances/ and its image stage under
// images/ are what a daemon killed meanwhile leaves, and the start-up sweep ends and removes
// both.

export type Probe = { kind: 'http'; port: number; path: string } | { kind: 'tcp'; port: number };

export interface SlimRequest {
  /** http://:PORT/PATH or tcp://:PORT; absent: tcp on the image's first port, or none */
  probe?: string;
  /** paths (files or folders) kept whether opened or not */
  keep?: string[];
}

export interface SlimResult {
  entries: RootEntry[];
  probe: string;
  keptFiles: number;
  totalFiles: number;
  keptBytes: number;
  totalBytes: number;
}

const MAX_KEEP = 256;
/** the profiling boot, the app's start and the probe under TCG */
const PROFILE_DEADLINE_MS = Number(process.env.UNIK_SLIM_DEADLINE_MS) || 10 * 60_000;
/** after the probe answers: what the app does right after its first answer is recorded too */
const SETTLE_MS = 2000;

/** Parses a probe: the guest port to reach, and for http the path to ask for. */
export function parseProbe(spec: string): Probe {
  const m = /^(http|tcp):\/\/(?:localhost|127\.0\.0\.1)?:(\d{1,5})(\/[\x21-\x7e]*)?$/.exec(spec);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535 || (m[1] === 'tcp' && m[3] && m[3] !== '/'))
    throw invalid('BAD_PROBE', `bad probe ${JSON.stringify(spec.slice(0, 200))}`, 'use http://:PORT/PATH (any HTTP answer counts) or tcp://:PORT (a connection counts); the port is the app\'s, in the guest');
  return m[1] === 'http' ? { kind: 'http', port, path: m[3] ?? '/' } : { kind: 'tcp', port };
}

export function probeText(p: Probe): string {
  return p.kind === 'http' ? `http://:${p.port}${p.path}` : `tcp://:${p.port}`;
}

/** --keep paths: absolute, normalised, no `..`. */
export function parseKeep(paths: string[]): string[] {
  if (paths.length > MAX_KEEP) throw invalid('BAD_KEEP', `at most ${MAX_KEEP} --keep paths`);
  return paths.map((p) => {
    if (typeof p !== 'string' || !p.startsWith('/') || p.length > 4096 || p.includes('\0') || p.split('/').includes('..'))
      throw invalid('BAD_KEEP', `--keep ${JSON.stringify(String(p).slice(0, 200))} is not an absolute path of the image`, 'e.g. --keep /usr/share/zoneinfo');
    return posix.normalize(p).replace(/(.)\/$/, '$1');
  });
}

/** The paths the profiling init said the app opened ("unik-init: opened PATH", \xNN escapes). */
export function parseOpened(log: string): Set<string> {
  const out = new Set<string>();
  // the console log has the serial line's CR LF endings
  for (const m of log.matchAll(/unik-init: opened (\/[^\r\n]*)/g)) {
    const path = m[1]!.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    out.add(posix.normalize(path));
  }
  return out;
}

const under = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);

/**
 * What the slim image keeps: every directory and symlink (cheap, and what a program finds by
 * stat alone), every file under /etc (configuration is often only checked for), the program,
 * what was opened, and what --keep names.
 */
export async function slimEntries(entries: RootEntry[], opened: Set<string>, keep: string[], program: string): Promise<Omit<SlimResult, 'probe'>> {
  const out: RootEntry[] = [];
  let keptFiles = 0, totalFiles = 0, keptBytes = 0, totalBytes = 0;
  for (const e of entries) {
    if (e.kind === 'dir' || e.kind === 'symlink') {
      out.push(e);
      continue;
    }
    const size = e.kind === 'file' ? (await lstat(e.source)).size : Buffer.byteLength(e.content);
    totalFiles++;
    totalBytes += size;
    if (opened.has(e.path) || e.path === program || under(e.path, '/etc') || keep.some((k) => under(e.path, k))) {
      out.push(e);
      keptFiles++;
      keptBytes += size;
    }
  }
  return { entries: out, keptFiles, totalFiles, keptBytes, totalBytes };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** One try of the probe against the host port: the HTTP status, or "connected"; throws if there is no answer yet. */
function probeOnce(p: Probe, hostPort: number): Promise<string> {
  return new Promise((resolve, reject) => {
    if (p.kind === 'tcp') {
      const s = connect({ host: '127.0.0.1', port: hostPort });
      s.setTimeout(3000, () => s.destroy(new Error('timed out')));
      // QEMU's user-mode forwarder accepts before the guest does: a connection counts once it holds for a moment
      s.once('connect', () => setTimeout(() => { if (!s.destroyed) { s.destroy(); resolve('connected'); } }, 300));
      s.once('close', () => reject(new Error('closed')));
      s.once('error', reject);
      return;
    }
    const req = request({ host: '127.0.0.1', port: hostPort, path: p.path, timeout: 5000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(`HTTP ${res.statusCode}`));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Boots the full image once with the profiling init, runs the probe until it answers, stops
 * the app in order (its stop is recorded too) and returns the paths it opened.
 */
export async function profileImage(provider: Provider, image: ImageRecord, probe: Probe | undefined, progress: ProgressFn): Promise<Set<string>> {
  const hostPort = probe ? await freePort() : 0;
  const now = new Date().toISOString();
  const inst: InstanceRecord = {
    id: newId(),
    name: `${image.name}-profile`,
    imageId: image.id,
    provider: provider.name,
    created: now,
    spec: {
      env: {},
      memoryMb: Math.max(image.manifest.defaultMemoryMb, 256),
      ports: probe ? [{ hostIp: '127.0.0.1', hostPort, guestPort: probe.port, protocol: 'tcp' }] : [],
      profile: true,
    },
    status: { state: 'pending', pid: null, exitCode: null, error: '', startedAt: now, finishedAt: null, accel: '' },
  };
  const tail = async () => (await readFile(provider.logFile(inst), 'utf8').catch(() => '')).split('\n').slice(-8).join('\n');
  let exited = false;
  progress({ step: 'slim', message: `booting ${image.name} once to learn which files it opens${probe ? ` (probe ${probeText(probe)})` : ''}` });
  try {
    await provider.start(inst, image, { volumes: [] }, () => { exited = true; });
    const end = Date.now() + PROFILE_DEADLINE_MS;
    let answer = '';
    let last = '';
    while (!answer) {
      if (exited || !(await provider.inspect(inst)).alive)
        throw buildFailed('SLIM_APP_EXITED', `${image.name} ended while it was being profiled:\n${await tail()}`, 'run the full image (without --slim) to see why');
      if (Date.now() > end)
        throw buildFailed('SLIM_PROBE_TIMEOUT', `the probe ${probe ? probeText(probe) : ''} got no answer within ${PROFILE_DEADLINE_MS / 1000} s (${last})`, 'is that the port the app listens on? --probe http://:PORT/PATH or tcp://:PORT');
      if (!probe) {
        // no probe: the app's start is what is recorded
        if ((await provider.inspect(inst)).ready) {
          await sleep(5000);
          answer = 'started';
        }
      } else {
        answer = await probeOnce(probe, hostPort).catch((e: Error) => ((last = e.message), ''));
      }
      if (!answer) await sleep(500);
    }
    progress({ step: 'slim', message: `the probe got ${answer}; stopping the app` });
    await sleep(SETTLE_MS);
    await provider.stop(inst, 30_000);
    const opened = parseOpened(await readFile(provider.logFile(inst), 'utf8').catch(() => ''));
    if (!opened.size) throw buildFailed('SLIM_NOTHING_RECORDED', `the profiling boot of ${image.name} recorded no file opened:\n${await tail()}`, 'build it without --slim');
    return opened;
  } finally {
    await provider.stop(inst, 0).catch(() => {});
    await provider.remove(inst).catch(() => {});
  }
}
