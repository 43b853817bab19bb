// The fields of a bundle's unik/manifest.json that unik-runc uses, checked before any of them
// is: the bundle is a pulled artifact, hostile until checked. Each refusal names the field.

import type { ImageManifest } from '../model/types.js';
import { parseUserSpec } from '../compilers/app-manifest.js';
import { canonicalSignal } from '../model/signals.js';

export class ManifestError extends Error {}

/** The manifest file is read whole: no real one is near this size. */
export const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_ARGS = 1024;
const MAX_ENV = 1024;
const MAX_STRING = 64 * 1024;
const MAX_PATH = 4096;
const MAX_MOUNTS = 64;
const MAX_NAME = 128;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function fail(field: string, why: string): never {
  throw new ManifestError(`the image is corrupt: /unik/manifest.json field "${field}" ${why}`);
}

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') fail(field, `must be a string, not ${v === null ? 'null' : typeof v}`);
  if (v.includes('\0')) fail(field, 'contains a NUL byte');
  if (Buffer.byteLength(v) > max) fail(field, `is longer than ${max} bytes`);
  return v;
}

function absPath(v: unknown, field: string): string {
  const p = text(v, field, MAX_PATH);
  if (!p.startsWith('/')) fail(field, `must be an absolute path in the guest, not "${p.slice(0, 80)}"`);
  if (p.split('/').includes('..')) fail(field, 'must not contain ".." segments');
  return p;
}

function size(v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(field, 'must be a whole number of bytes');
  return v;
}

/**
 * The manifest with the fields unik-runc uses checked: types, NUL bytes, lengths and counts.
 * argv, env, cwd and mountPoints go to the guest's boot config; name names the template VM;
 * arch, kernel.sizeBytes and root.sizeBytes are checked against the host and the files.
 */
export function checkManifest(raw: unknown): ImageManifest {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('(top level)', 'must be a JSON object');
  const m = raw as Record<string, unknown>;

  if (!Array.isArray(m.argv)) fail('argv', 'must be an array of strings');
  if (m.argv.length > MAX_ARGS) fail('argv', `has more than ${MAX_ARGS} entries`);
  m.argv.forEach((a, i) => text(a, `argv[${i}]`, MAX_STRING));

  if (m.env !== undefined) {
    if (!m.env || typeof m.env !== 'object' || Array.isArray(m.env)) fail('env', 'must be an object of strings');
    const entries = Object.entries(m.env as Record<string, unknown>);
    if (entries.length > MAX_ENV) fail('env', `has more than ${MAX_ENV} variables`);
    for (const [k, v] of entries) {
      if (!ENV_NAME.test(k) || k.length > 256) fail('env', `has an invalid variable name "${k.slice(0, 80).replace(/\0/g, '\\0')}"`);
      text(v, `env.${k}`, MAX_STRING);
    }
  }

  if (m.cwd !== undefined && m.cwd !== '') absPath(m.cwd, 'cwd');

  if (m.mountPoints !== undefined) {
    if (!Array.isArray(m.mountPoints)) fail('mountPoints', 'must be an array of paths');
    if (m.mountPoints.length > MAX_MOUNTS) fail('mountPoints', `has more than ${MAX_MOUNTS} entries`);
    m.mountPoints.forEach((p, i) => absPath(p, `mountPoints[${i}]`));
  }

  if (m.defaultMemoryMb !== undefined && (typeof m.defaultMemoryMb !== 'number' || !Number.isSafeInteger(m.defaultMemoryMb) || m.defaultMemoryMb < 16 || m.defaultMemoryMb > 65536))
    fail('defaultMemoryMb', 'must be a whole number of MB from 16 to 65536');

  if (m.name !== undefined) {
    const name = text(m.name, 'name', MAX_NAME);
    if (/[\x00-\x1f\x7f]/.test(name)) fail('name', 'contains control characters');
  }
  text(m.arch, 'arch', 32);
  // the hub's artifact never carries a root disk: an image that names one cannot boot here
  if (m.rootDisk !== undefined) fail('rootDisk', 'names a read-only root disk, which unik-runc does not attach: run the image with the qemu provider (unik run)');
  if (m.user !== undefined && (typeof m.user !== 'object' || !parseUserSpec(m.user))) fail('user', 'must be {uid, gid, groups} of whole numbers below 4294967295, at most 64 groups');
  if (m.stopSignal !== undefined && (typeof m.stopSignal !== 'string' || !canonicalSignal(m.stopSignal))) fail('stopSignal', 'must be a signal name such as SIGQUIT');

  for (const part of ['kernel', 'root'] as const) {
    const v = m[part];
    if (v === undefined) continue;
    if (!v || typeof v !== 'object' || Array.isArray(v)) fail(part, 'must be an object');
    size((v as Record<string, unknown>).sizeBytes, `${part}.sizeBytes`);
  }
  return raw as ImageManifest;
}
