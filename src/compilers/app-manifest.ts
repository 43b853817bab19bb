import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { invalid } from '../model/errors.js';
import { readFileInside } from '../util/safe-path.js';
import { canonicalSignal } from '../model/signals.js';

/**
 * unik.yaml, in the app's directory: what build flags would otherwise carry. Flags override it.
 * Unknown keys are an error naming the key (the 2016 daemon silently ignored typos).
 */
export interface AppManifest {
  language?: string;
  /** the program: a file in the app (or, for elf, an absolute path on the daemon host) */
  entry?: string;
  args?: string[];
  env?: Record<string, string>;
  /** extra files: { from: path in the app or absolute host path, to: path in the image } */
  files?: { from: string; to: string }[];
  /** shared libraries loaded with dlopen, which ldd cannot see */
  libraries?: string[];
  mountpoints?: string[];
  /** default memory, MB */
  memory?: number;
  /** ports the app listens on (documentation, and Docker's ExposedPorts) */
  ports?: number[];
  /** true: the root on a read-only disk; false: in the initramfs; absent: by size */
  rootDisk?: boolean;
  /** the user the app runs as: "UID:GID[:G1,G2,...]" or {uid, gid, groups} */
  user?: { uid: number; gid: number; groups: number[] };
  /** the signal an orderly stop sends ("SIGQUIT", "QUIT" or a number); stored as its SIG name */
  stopSignal?: string;
}

const KEYS: (keyof AppManifest)[] = ['language', 'entry', 'args', 'env', 'files', 'libraries', 'mountpoints', 'memory', 'ports', 'rootDisk', 'user', 'stopSignal'];

const MAX_ID = 0xfffffffe;

/** A user as unik.yaml gives it; undefined if it is malformed. Numbers only: there is no passwd to look names up in. */
export function parseUserSpec(v: unknown): { uid: number; gid: number; groups: number[] } | undefined {
  const id = (x: unknown): number | undefined => {
    const n = typeof x === 'string' && /^\d{1,10}$/.test(x) ? Number(x) : x;
    return Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_ID ? (n as number) : undefined;
  };
  let parts: unknown[];
  let groups: unknown[] = [];
  if (typeof v === 'string') {
    const m = /^([^:]+):([^:]+)(?::([^:]+))?$/.exec(v);
    if (!m) return undefined;
    parts = [m[1], m[2]];
    groups = m[3] ? m[3].split(',') : [];
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).some((k) => !['uid', 'gid', 'groups'].includes(k))) return undefined;
    parts = [o.uid, o.gid];
    if (o.groups !== undefined && !Array.isArray(o.groups)) return undefined;
    groups = (o.groups as unknown[] | undefined) ?? [];
  } else {
    return undefined;
  }
  const uid = id(parts[0]);
  const gid = id(parts[1]);
  const gs = groups.map(id);
  if (uid === undefined || gid === undefined || gs.length > 64 || gs.some((g) => g === undefined)) return undefined;
  return { uid, gid, groups: gs as number[] };
}

export async function readAppManifest(dir: string): Promise<AppManifest> {
  const file = ['unik.yaml', 'unik.yml'].find((f) => existsSync(join(dir, f)));
  if (!file) return {};
  // YAML errors quote the text: a unik.yaml linked out of the upload is never read
  const text = await readFileInside(dir, file);
  if (text === undefined) return {};
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw invalid('BAD_APP_MANIFEST', `unik.yaml is not valid YAML: ${(e as Error).message}`);
  }
  return checkAppManifest(doc ?? {});
}

export function checkAppManifest(doc: unknown): AppManifest {
  const bad = (what: string) => invalid('BAD_APP_MANIFEST', `unik.yaml: ${what}`, 'see the README section "unik.yaml"');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the top level must be a mapping');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!KEYS.includes(k as keyof AppManifest)) throw bad(`unknown key "${k}" (known keys: ${KEYS.join(', ')})`);
  const str = (k: string) => {
    if (d[k] !== undefined && typeof d[k] !== 'string') throw bad(`"${k}" must be a string`);
    return d[k] as string | undefined;
  };
  const strings = (k: string) => {
    const v = d[k];
    if (v === undefined) return undefined;
    if (typeof v === 'string') return v.split(' ').filter(Boolean);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' || typeof x === 'number')) throw bad(`"${k}" must be a list of strings`);
    return v.map(String);
  };
  const m: AppManifest = {};
  if (str('language')) m.language = str('language');
  if (str('entry')) m.entry = str('entry');
  const args = strings('args');
  if (args) m.args = args;
  const libs = strings('libraries');
  if (libs) m.libraries = libs;
  const mps = strings('mountpoints');
  if (mps) m.mountpoints = mps;
  if (d.env !== undefined) {
    if (typeof d.env !== 'object' || d.env === null || Array.isArray(d.env)) throw bad('"env" must be a mapping of NAME: value');
    m.env = Object.fromEntries(Object.entries(d.env).map(([k, v]) => [k, String(v)]));
  }
  if (d.files !== undefined) {
    if (!Array.isArray(d.files)) throw bad('"files" must be a list');
    m.files = d.files.map((f) => {
      if (typeof f === 'string') return { from: f, to: f.startsWith('/') ? f : `/app/${f}` };
      if (typeof f === 'object' && f && typeof (f as { from?: unknown }).from === 'string' && typeof (f as { to?: unknown }).to === 'string') return f as { from: string; to: string };
      throw bad('each of "files" is a path, or {from, to}');
    });
  }
  if (d.memory !== undefined) {
    if (!Number.isInteger(d.memory) || (d.memory as number) < 16) throw bad('"memory" must be a whole number of MB, at least 16');
    m.memory = d.memory as number;
  }
  if (d.rootDisk !== undefined) {
    if (typeof d.rootDisk !== 'boolean') throw bad('"rootDisk" must be true or false');
    m.rootDisk = d.rootDisk;
  }
  if (d.user !== undefined) {
    const u = parseUserSpec(d.user);
    if (!u) throw bad('"user" must be "UID:GID" or "UID:GID:G1,G2,..." (numbers below 4294967295, at most 64 groups)');
    m.user = u;
  }
  if (d.stopSignal !== undefined) {
    const sig = typeof d.stopSignal === 'string' || typeof d.stopSignal === 'number' ? canonicalSignal(String(d.stopSignal)) : undefined;
    if (!sig) throw bad('"stopSignal" must be a signal name such as SIGQUIT, or its number');
    m.stopSignal = sig;
  }
  if (d.ports !== undefined) {
    if (!Array.isArray(d.ports) || !d.ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) throw bad('"ports" must be a list of port numbers');
    m.ports = d.ports as number[];
  }
  return m;
}
