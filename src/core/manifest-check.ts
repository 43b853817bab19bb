import { failedPrecondition, isUnikError, type UnikError } from '../model/errors.js';
import type { ImageManifest } from '../model/types.js';
import { machineArch, type Arch } from '../model/arch.js';
import { checkMountPoint } from './volumes.js';
import { parseUserSpec } from '../compilers/app-manifest.js';
import { canonicalSignal } from '../model/signals.js';

// The unik manifest.json inside a pulled image is written by whoever pushed it. It is checked
// field by field and rebuilt from the checked fields only: unknown fields are dropped, and the
// fields that name host things (ids, names, file names, where it came from) are never taken
// from it — the pull sets them.

const LIMIT = { strings: 1024, stringBytes: 128 * 1024, envEntries: 1024, envBytes: 1536 * 1024, mountPoints: 32, ports: 64, fragments: 64, path: 4096 };

function bad(field: string, problem: string): UnikError {
  return failedPrecondition('BAD_IMAGE_MANIFEST', `the image's unik/manifest.json: ${field} ${problem}`, 'unik refused the image and stored nothing; pull only images pushed with unik hub push from a registry you trust');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown, field: string, re: RegExp, max = 256): string {
  if (typeof v !== 'string') throw bad(field, `must be a string, not ${typeof v}`);
  if (v.length > max || !re.test(v)) throw bad(field, `is not valid: ${JSON.stringify(v.slice(0, 80))}`);
  return v;
}

/** A string handed to the guest: any text but NUL (which would cut it short, or split it). */
function text(v: unknown, field: string): string {
  if (typeof v !== 'string') throw bad(field, `must be a string, not ${v === null ? 'null' : typeof v}`);
  if (v.includes('\0')) throw bad(field, 'contains a NUL byte');
  return v;
}

/** Absolute and canonical: no "." or ".." or empty segments, no trailing slash, no NUL. */
export function isCanonicalAbsolute(p: string): boolean {
  if (!p.startsWith('/') || p.includes('\0') || p.length > LIMIT.path) return false;
  if (p === '/') return true;
  return p.slice(1).split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** A file name the image may give for its kernel or root: a plain name, or it is hostile. */
function plainFileName(v: unknown, field: string): void {
  if (v === undefined) return;
  if (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(v)) throw bad(field, `must be a plain file name, not ${JSON.stringify(v)?.slice(0, 120)}`);
}

function size(v: unknown, field: string, actual: number): number {
  if (v !== undefined && v !== actual) throw bad(field, `says ${JSON.stringify(v)?.slice(0, 40)} bytes, but the file holds ${actual}`);
  return actual;
}

export interface PulledFacts {
  /** the architecture the registry entry is for (its config and index say so) */
  arch: Arch;
  id: string;
  name: string;
  source: string;
  sourceDigest: string;
  kernelBytes: number;
  rootBytes: number;
}

/**
 * Parses and checks a pulled image's manifest.json. Returns the manifest unik stores: the
 * image's own description (argv, env, mounts, memory, ...) with unik's own names for the
 * files (kernel, root.cpio) and the facts of the pull.
 */
export function checkPulledManifest(json: string, facts: PulledFacts): ImageManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw bad('', 'is not valid JSON');
  }
  if (!isObject(raw)) throw bad('', 'is not a JSON object');
  const m = raw;
  if (m.schemaVersion !== 1) throw bad('schemaVersion', `is ${JSON.stringify(m.schemaVersion)}; this unik reads version 1`);
  // the image's own word must agree with the platform it was pulled as
  if (m.arch !== machineArch(facts.arch)) throw failedPrecondition('WRONG_ARCH', `the image holds a ${JSON.stringify(m.arch)?.slice(0, 40)} unikernel, but its registry entry says ${facts.arch}`, 'push the image again with unik hub push');
  if (m.base !== 'linux') throw bad('base', `is ${JSON.stringify(m.base)?.slice(0, 40)}; unik runs linux unikernels`);
  const created = str(m.created, 'created', /^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)$/, 40);
  if (Number.isNaN(Date.parse(created))) throw bad('created', 'is not a date');

  if (!isObject(m.kernel)) throw bad('kernel', 'must be an object');
  if (!isObject(m.root)) throw bad('root', 'must be an object');
  plainFileName(m.kernel.file, 'kernel.file');
  plainFileName(m.root.file, 'root.file');
  if (m.root.kind !== 'initramfs') throw bad('root.kind', `is ${JSON.stringify(m.root.kind)?.slice(0, 40)}; unik reads initramfs roots`);
  // the hub carries no root disk (push refuses such images): one named here would be missing
  if (m.rootDisk !== undefined) throw bad('rootDisk', 'names a root disk, which images from a registry cannot have');
  // who the app runs as and how it stops are kept, checked: dropping them would run it as root
  let user: ImageManifest['user'];
  if (m.user !== undefined) {
    const u = isObject(m.user) ? parseUserSpec(m.user) : undefined;
    if (!u) throw bad('user', 'must be {uid, gid, groups} of whole numbers below 4294967295, at most 64 groups');
    user = u;
  }
  let stopSignal: string | undefined;
  if (m.stopSignal !== undefined) {
    stopSignal = typeof m.stopSignal === 'string' ? canonicalSignal(m.stopSignal) : undefined;
    if (!stopSignal) throw bad('stopSignal', 'must be a signal name such as SIGQUIT');
  }
  const fragments = m.kernel.fragments;
  if (!Array.isArray(fragments) || fragments.length > LIMIT.fragments) throw bad('kernel.fragments', `must be a list of at most ${LIMIT.fragments} names`);

  if (!Array.isArray(m.argv) || m.argv.length > LIMIT.strings) throw bad('argv', `must be a list of at most ${LIMIT.strings} strings`);
  const argv = m.argv.map((a, n) => text(a, `argv[${n}]`));
  if (argv.reduce((s, a) => s + Buffer.byteLength(a) + 1, 0) > LIMIT.stringBytes) throw bad('argv', `is over ${LIMIT.stringBytes} bytes`);

  if (!isObject(m.env)) throw bad('env', 'must be an object of NAME: value strings');
  const envEntries = Object.entries(m.env);
  if (envEntries.length > LIMIT.envEntries) throw bad('env', `has over ${LIMIT.envEntries} variables`);
  let envBytes = 0;
  const env: Record<string, string> = {};
  for (const [k, v] of envEntries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,255}$/.test(k)) throw bad('env', `has a bad variable name ${JSON.stringify(k.slice(0, 80))}`);
    env[k] = text(v, `env.${k}`);
    envBytes += Buffer.byteLength(`${k}=${env[k]}`) + 1;
  }
  if (envBytes > LIMIT.envBytes) throw bad('env', `is over ${LIMIT.envBytes} bytes`);

  const cwd = text(m.cwd, 'cwd');
  if (!isCanonicalAbsolute(cwd)) throw bad('cwd', `must be a canonical absolute path, not ${JSON.stringify(cwd.slice(0, 120))}`);

  if (!Array.isArray(m.mountPoints) || m.mountPoints.length > LIMIT.mountPoints) throw bad('mountPoints', `must be a list of at most ${LIMIT.mountPoints} paths`);
  const mountPoints = m.mountPoints.map((p, n) => {
    const field = `mountPoints[${n}]`;
    const mp = text(p, field);
    if (!isCanonicalAbsolute(mp)) throw bad(field, `must be a canonical absolute path, not ${JSON.stringify(mp.slice(0, 120))}`);
    try {
      checkMountPoint(mp); // the same rules as a build's mount points (reserved paths, spaces)
    } catch (e) {
      throw isUnikError(e) ? bad(field, `is refused: ${e.message}`) : e;
    }
    return mp;
  });
  if (new Set(mountPoints).size !== mountPoints.length) throw bad('mountPoints', 'lists a path twice');

  const mem = m.defaultMemoryMb;
  if (typeof mem !== 'number' || !Number.isSafeInteger(mem) || mem < 16 || mem > 65536) throw bad('defaultMemoryMb', `must be a whole number of MB from 16 to 65536, not ${JSON.stringify(mem)?.slice(0, 40)}`);
  let ports: number[] | undefined;
  if (m.ports !== undefined) {
    if (!Array.isArray(m.ports) || m.ports.length > LIMIT.ports) throw bad('ports', `must be a list of at most ${LIMIT.ports} port numbers`);
    ports = m.ports.map((p, n) => {
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) throw bad(`ports[${n}]`, `must be a port number, not ${JSON.stringify(p)?.slice(0, 40)}`);
      return p;
    });
  }

  return {
    schemaVersion: 1,
    id: facts.id,
    name: facts.name,
    created,
    arch: machineArch(facts.arch),
    base: 'linux',
    language: str(m.language, 'language', /^[a-z0-9][a-z0-9+_.-]*$/, 32),
    compiler: str(m.compiler, 'compiler', /^[A-Za-z0-9][A-Za-z0-9+_.-]*$/, 64),
    provider: str(m.provider, 'provider', /^[a-z0-9][a-z0-9-]*$/, 32),
    kernel: {
      file: 'kernel',
      configHash: str(m.kernel.configHash, 'kernel.configHash', /^[0-9a-f]{8,64}$/, 64),
      fragments: fragments.map((f, n) => str(f, `kernel.fragments[${n}]`, /^[a-z0-9][a-z0-9_-]*$/, 32)),
      sizeBytes: size(m.kernel.sizeBytes, 'kernel.sizeBytes', facts.kernelBytes),
    },
    root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: size(m.root.sizeBytes, 'root.sizeBytes', facts.rootBytes) },
    argv,
    cwd,
    env,
    mountPoints,
    ...(m.mountPointsOptional === true ? { mountPointsOptional: true } : {}),
    defaultMemoryMb: mem,
    ...(ports ? { ports } : {}),
    ...(user ? { user } : {}),
    ...(stopSignal ? { stopSignal } : {}),
    source: facts.source,
    sourceDigest: facts.sourceDigest,
  };
}
