import { createReadStream, existsSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { request } from 'node:http';
import { connect } from 'node:net';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RootEntry } from '../compilers/types.js';
import { buildFailed, invalid } from '../model/errors.js';
import type { ImageRecord, InstanceRecord, ProgressFn } from '../model/types.js';
import type { Provider } from '../providers/types.js';
import { newId } from './ids.js';
import { freePort } from '../util/free-port.js';

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

const OPENED = /unik-init: opened (\/[^\r\n]*)/;
/** The init's word that the kernel's fanotify queue overflowed: some opens were not recorded. */
const LOST = 'unik-init: profile: events lost';

/** One console line's "unik-init: opened PATH" (\xNN escapes are bytes of a UTF-8 name), if it has one. */
function openedIn(line: string): string | undefined {
  const m = OPENED.exec(line);
  if (!m) return undefined;
  const bytes: number[] = [];
  const text = m[1]!;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === 'x' && /^[0-9a-f]{2}$/.test(text.slice(i + 2, i + 4))) {
      bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else bytes.push(text.charCodeAt(i) & 0xff);
  }
  return posix.normalize(Buffer.from(bytes).toString('utf8'));
}

/** The paths the profiling init said the app opened ("unik-init: opened PATH"; the console log has CR LF endings). */
export function parseOpened(log: string): Set<string> {
  const out = new Set<string>();
  for (const line of log.split('\n')) {
    const p = openedIn(line);
    if (p) out.add(p);
  }
  return out;
}

/** The same, read from the console log line by line (it may be large); `lost` if the init said events were lost. */
async function readOpened(file: string): Promise<{ opened: Set<string>; lost: boolean }> {
  const opened = new Set<string>();
  let lost = false;
  if (!existsSync(file)) return { opened, lost };
  const lines = createInterface({ input: createReadStream(file, { encoding: 'latin1' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.includes(LOST)) lost = true;
    const p = openedIn(line);
    if (p) opened.add(p);
  }
  return { opened, lost };
}

/** The end of a guest's console for an error message: printable text only, bounded (the guest's to say). */
export function consoleTail(log: string, lines = 8): string {
  return log
    .split('\n')
    .slice(-lines)
    .map((l) => l.replace(/[^\x20-\x7e\t]/g, '').slice(0, 300))
    .join('\n');
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


/** One try of the probe against the host port: the HTTP status, or "connected"; throws if there is no answer yet. */
export function probeOnce(p: Probe, hostPort: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    // a hard limit on each try: a server that trickles bytes cannot hold the build
    const timer = setTimeout(() => done(new Error('no answer within 5 s')), 5000);
    let settle: () => void = () => {};
    const done = (err: Error | null, v?: string) => {
      clearTimeout(timer);
      settle();
      if (err) reject(err);
      else resolve(v!);
    };
    if (p.kind === 'tcp') {
      const s = connect({ host: '127.0.0.1', port: hostPort });
      settle = () => s.destroy();
      // QEMU's user-mode forwarder accepts before the guest does, and drops the connection when the
      // guest refuses it (its network is up by the time the app starts): a connection counts once it holds for a second
      s.once('connect', () => setTimeout(() => (s.destroyed ? undefined : done(null, 'connected')), 1000));
      s.once('close', () => done(new Error('closed')));
      s.once('error', (e) => done(e));
      return;
    }
    const req = request({ host: '127.0.0.1', port: hostPort, path: p.path });
    settle = () => req.destroy();
    // the status line is the answer; the body is not waited for
    req.once('response', (res) => done(null, `HTTP ${res.statusCode}`));
    req.once('error', (e) => done(e));
    req.end();
  });
}

/** One profiling VM at a time: each is a whole VM running an image's code during a build. */
let profiling: Promise<unknown> = Promise.resolve();

/**
 * Boots the full image once with the profiling init, waits for the app to start, runs the
 * probe until it answers, stops the app in order (its stop is recorded too) and returns the
 * paths it opened. The VM has no way out (QEMU's restrict=on); the probe reaches it through
 * a forwarded port on 127.0.0.1.
 */
export function profileImage(provider: Provider, image: ImageRecord, probe: Probe | undefined, progress: ProgressFn): Promise<Set<string>> {
  const turn = profiling.then(() => profileOnce(provider, image, probe, progress));
  profiling = turn.catch(() => undefined);
  return turn;
}

async function profileOnce(provider: Provider, image: ImageRecord, probe: Probe | undefined, progress: ProgressFn): Promise<Set<string>> {
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
  const log = provider.logFile(inst);
  const tail = async () => consoleTail(await readFile(log, 'utf8').catch(() => ''));
  let exited = false;
  progress({ step: 'slim', message: `booting ${image.name} once to learn which files it opens${probe ? ` (probe ${probeText(probe)})` : ''}` });
  try {
    await provider.start(inst, image, { volumes: [] }, () => { exited = true; });
    const end = Date.now() + PROFILE_DEADLINE_MS;
    let answer = '';
    let last = 'the app has not started';
    while (!answer) {
      const seen = exited ? undefined : await provider.inspect(inst);
      if (!seen?.alive)
        throw buildFailed('SLIM_APP_EXITED', `${image.name} ended while it was being profiled:\n${await tail()}`, 'run the full image (without --slim) to see why');
      if (Date.now() > end)
        throw buildFailed('SLIM_PROBE_TIMEOUT', `the probe ${probe ? probeText(probe) : ''} got no answer within ${PROFILE_DEADLINE_MS / 1000} s (${last})`, 'is that the port the app listens on? --probe http://:PORT/PATH or tcp://:PORT');
      // the app first (QEMU's forwarder accepts connections before the guest has booted), then the probe
      if (!seen.ready) {
        await sleep(250);
        continue;
      }
      if (!probe) {
        // no probe: the app's start is what is recorded
        await sleep(5000);
        answer = 'started';
      } else {
        answer = await probeOnce(probe, hostPort).catch((e: Error) => ((last = e.message), ''));
        if (!answer) await sleep(500);
      }
    }
    progress({ step: 'slim', message: `the probe got ${answer}; stopping the app` });
    await sleep(SETTLE_MS);
    await provider.stop(inst, 30_000);
    if (existsSync(`${log}.1`)) throw buildFailed('SLIM_LOG_TOO_LARGE', `${image.name} wrote so much on its console while it was profiled that the record of the files it opened was cut`, 'make it quieter for the profiling run, or build it without --slim');
    const { opened, lost } = await readOpened(log);
    if (lost) throw buildFailed('SLIM_EVENTS_LOST', `the profiling boot of ${image.name} could not record every file it opened (the kernel's event queue overflowed)`, 'build it again, or without --slim');
    if (!opened.size) throw buildFailed('SLIM_NOTHING_RECORDED', `the profiling boot of ${image.name} recorded no file opened:\n${await tail()}`, 'build it without --slim');
    return opened;
  } finally {
    await provider.stop(inst, 0).catch(() => {});
    // a VM that could not be stopped keeps its folder: the next start-up ends it and removes both
    if (!(await provider.inspect(inst).catch(() => ({ alive: true }))).alive) await provider.remove(inst).catch(() => {});
  }
}
