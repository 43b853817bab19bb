import { posix } from 'node:path';
import { badContainerImage } from './image-tree.js';
import { DIGEST } from './oci-check.js';

// A container image's config (the OCI image config, or Docker's, which is the same shape) is
// hostile JSON: every field used is checked for type and size here, and what is not used is
// never looked at.

/** Signals a StopSignal may name (Linux, the same numbers on x86-64 and arm64). */
export const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10,
  SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19,
  SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

/** "SIGQUIT", "quit", "3" → "SIGQUIT"; undefined when it names no signal of the list. */
export function signalName(v: string): string | undefined {
  const s = v.trim().toUpperCase();
  if (/^\d{1,2}$/.test(s)) return Object.keys(SIGNALS).find((k) => SIGNALS[k] === Number(s));
  const name = s.startsWith('SIG') ? s : `SIG${s}`;
  return Object.hasOwn(SIGNALS, name) ? name : undefined;
}

export interface ContainerConfig {
  os: string;
  architecture: string;
  variant?: string;
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir: string;
  user: string;
  ports: number[];
  /** ExposedPorts unik does not publish (udp, ranges), for a note */
  portsSkipped: string[];
  stopSignal?: string;
  volumes: string[];
  diffIds: string[];
}

const MAX_ARGS = 4096;
const MAX_STRING = 128 * 1024;
const MAX_ENV = 4096;
const MAX_PORTS = 256;
const MAX_VOLUMES = 64;
const MAX_LAYERS = 128;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function strings(v: unknown, field: string, where: string, max = MAX_ARGS): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === 'string' && s.length <= MAX_STRING && !s.includes('\0')))
    throw badContainerImage(where, `its ${field} is not a list of at most ${max} strings (each under ${MAX_STRING} bytes, no NUL)`);
  return v as string[];
}

function text(v: unknown, field: string, where: string, max = 4096): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || v.length > max || v.includes('\0')) throw badContainerImage(where, `its ${field} is not a string of at most ${max} bytes`);
  return v;
}

function keys(v: unknown, field: string, where: string, max: number): string[] {
  if (v === undefined || v === null) return [];
  if (!isObject(v)) throw badContainerImage(where, `its ${field} is not an object`);
  const k = Object.keys(v);
  if (k.length > max) throw badContainerImage(where, `its ${field} lists ${k.length} entries; at most ${max} are taken`);
  return k;
}

/** Parses and checks an image config blob. */
export function parseContainerConfig(body: Buffer, where: string): ContainerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw badContainerImage(where, 'is not valid JSON');
  }
  if (!isObject(raw)) throw badContainerImage(where, 'is not a JSON object');
  const c = raw.config ?? {};
  if (!isObject(c)) throw badContainerImage(where, '"config" is not an object');
  const os = text(raw.os, 'os', where, 32);
  const architecture = text(raw.architecture, 'architecture', where, 32);
  const variant = text(raw.variant, 'variant', where, 16) || undefined;

  const env: Record<string, string> = {};
  for (const e of strings(c.Env, 'Env', where, MAX_ENV)) {
    const eq = e.indexOf('=');
    const k = eq < 0 ? e : e.slice(0, eq);
    if (!/^[^=\s]{1,256}$/.test(k)) throw badContainerImage(where, `its Env has the entry ${JSON.stringify(e.slice(0, 80))}, not NAME=VALUE`);
    env[k] = eq < 0 ? '' : e.slice(eq + 1);
  }

  const wd = text(c.WorkingDir, 'WorkingDir', where);
  // Docker takes a relative WorkingDir from the root
  const workingDir = wd ? posix.normalize(`/${wd}`).replace(/(.)\/+$/, '$1') : '/';

  const ports: number[] = [];
  const portsSkipped: string[] = [];
  for (const k of keys(c.ExposedPorts, 'ExposedPorts', where, MAX_PORTS)) {
    const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(k);
    if (!m) {
      if (/^\d{1,5}-\d{1,5}(\/\w+)?$/.test(k)) portsSkipped.push(k);
      else throw badContainerImage(where, `its ExposedPorts has ${JSON.stringify(k.slice(0, 40))}, not PORT[/PROTO]`);
      continue;
    }
    const n = Number(m[1]);
    if (n < 1 || n > 65535) throw badContainerImage(where, `its ExposedPorts has port ${n}, outside 1-65535`);
    if ((m[2] ?? 'tcp').toLowerCase() === 'tcp') ports.includes(n) || ports.push(n);
    else portsSkipped.push(k);
  }

  let stopSignal: string | undefined;
  const ss = text(c.StopSignal, 'StopSignal', where, 32);
  if (ss) {
    stopSignal = signalName(ss);
    if (!stopSignal) throw badContainerImage(where, `its StopSignal ${JSON.stringify(ss)} is not a signal unik knows (${Object.keys(SIGNALS).slice(0, 5).join(', ')}…)`);
  }

  const volumes: string[] = [];
  for (const k of keys(c.Volumes, 'Volumes', where, MAX_VOLUMES)) {
    if (!k.startsWith('/') || k.includes('\0') || k.length > 200 || k.split('/').includes('..')) throw badContainerImage(where, `its Volumes has ${JSON.stringify(k.slice(0, 80))}, not an absolute path`);
    const v = posix.normalize(k).replace(/(.)\/+$/, '$1');
    if (!volumes.includes(v)) volumes.push(v);
  }

  const rootfs = raw.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers') throw badContainerImage(where, 'has no rootfs of type "layers"');
  const diffIds = strings(rootfs.diff_ids, 'rootfs.diff_ids', where, MAX_LAYERS);
  for (const d of diffIds) if (!DIGEST.test(d)) throw badContainerImage(where, `its rootfs.diff_ids has ${JSON.stringify(d.slice(0, 80))}, not sha256:<64 hex digits>`);

  return {
    os,
    architecture,
    ...(variant ? { variant } : {}),
    entrypoint: strings(c.Entrypoint, 'Entrypoint', where),
    cmd: strings(c.Cmd, 'Cmd', where),
    env,
    workingDir,
    user: text(c.User, 'User', where, 256).trim(),
    ports: ports.sort((a, b) => a - b),
    portsSkipped,
    ...(stopSignal ? { stopSignal } : {}),
    volumes,
    diffIds,
  };
}
