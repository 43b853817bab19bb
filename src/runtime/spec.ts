// The OCI runtime spec (config.json) of a bundle, mapped onto a unikernel's boot: the part of
// the spec a VM can honour, and a clear word about the part it cannot.

import type { ImageManifest } from '../model/types.js';

/** The subset of config.json that unik-runc reads. */
export interface OciSpec {
  ociVersion?: string;
  process?: { terminal?: boolean; args?: string[]; env?: string[]; cwd?: string };
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: OciMount[];
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: { type: string; path?: string }[];
    resources?: { memory?: { limit?: number } };
  };
}

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export class SpecError extends Error {}

export const DEFAULT_MEMORY_MB = 128;
export const MIN_MEMORY_MB = 32;
export const MAX_MEMORY_MB = 65536;

/** Where the VM's network comes from. */
export type NetPlan =
  /** the spec names a network namespace (a CRI pod's): join it through a tap device */
  | { kind: 'netns'; path: string }
  /** a fresh namespace (ctr run) or the host's: QEMU user-mode networking, outbound only */
  | { kind: 'user' };

export interface GuestPlan {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  hostname: string;
  memoryMb: number;
  net: NetPlan;
  /** a bind-mounted /etc/resolv.conf on the host: its first nameserver becomes the guest's DNS */
  resolvConf?: string;
  /** what the spec asks and a VM ignores, for the runtime log */
  warnings: string[];
}

/** Mount destinations every container gets; the guest init provides its own equivalents. */
const STANDARD_DESTINATIONS = new Set([
  '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/run',
  '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/termination-log',
]);
const KERNEL_FS = new Set(['proc', 'sysfs', 'tmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2']);

/**
 * Maps the spec onto the guest contract.
 * - argv: `process.args` when given (containerd puts the image's Entrypoint + Cmd there, or the
 *   command the user typed, as Docker does); else the image's baked argv. The guest does not
 *   search PATH: the program must be an absolute path in the image.
 * - env: the image's env, then `process.env` over it.
 * - cwd: `process.cwd`, else the image's.
 * - memory: `linux.resources.memory.limit` (bytes) is the VM's RAM; else the image's default.
 * - mounts: the standard ones (/proc, /dev, /sys, /etc/hosts …) are the guest init's job and are
 *   dropped; other bind mounts (volumes) are not supported yet and are logged as ignored.
 */
export function planGuest(spec: OciSpec, manifest: Pick<ImageManifest, 'argv' | 'env' | 'cwd' | 'defaultMemoryMb'>, id: string): GuestPlan {
  const p = spec.process ?? {};
  if (p.terminal) throw new SpecError('a terminal (ctr run -t, kubectl run -it) is not supported for unikernels: the console is the task\'s stdout');
  const argv = p.args && p.args.length > 0 ? [...p.args] : [...manifest.argv];
  if (argv.length === 0) throw new SpecError('no program to run: process.args is empty and the image has no argv');
  const env: Record<string, string> = { ...manifest.env };
  for (const kv of p.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const warnings: string[] = [];
  let resolvConf: string | undefined;
  for (const m of spec.mounts ?? []) {
    if (m.destination === '/etc/resolv.conf' && m.source) resolvConf = m.source;
    if (STANDARD_DESTINATIONS.has(m.destination) || KERNEL_FS.has(m.type ?? '')) continue;
    if (m.destination.startsWith('/var/run/secrets/') || m.destination.startsWith('/run/secrets/')) {
      warnings.push(`mount ${m.destination} (Kubernetes secrets and service-account tokens) is ignored: unikernels get no volumes from the spec yet`);
      continue;
    }
    warnings.push(`mount ${m.source ?? '?'} on ${m.destination} is ignored: volumes are not supported for unikernels under containerd yet`);
  }
  return {
    argv,
    env,
    cwd: p.cwd || manifest.cwd || '/',
    hostname: spec.hostname || id.slice(0, 12),
    memoryMb: memoryMb(spec, manifest.defaultMemoryMb),
    net: netPlan(spec),
    ...(resolvConf ? { resolvConf } : {}),
    warnings,
  };
}

export function memoryMb(spec: OciSpec, imageDefault?: number): number {
  const limit = spec.linux?.resources?.memory?.limit;
  if (limit === undefined || limit === null || limit <= 0) return imageDefault && imageDefault > 0 ? imageDefault : DEFAULT_MEMORY_MB;
  const mb = Math.floor(limit / (1024 * 1024));
  if (mb < MIN_MEMORY_MB) throw new SpecError(`memory limit ${limit} bytes (${mb} MB) is too small for a unikernel VM: at least ${MIN_MEMORY_MB} MB`);
  return Math.min(mb, MAX_MEMORY_MB);
}

/**
 * A network namespace with a path (a CRI pod's /var/run/netns/cni-…) is joined. Without a path
 * runc would make a fresh, empty one (ctr run); with none at all the container shares the
 * host's (ctr run --net-host). A VM needs no namespace for either: QEMU's user-mode network.
 */
export function netPlan(spec: OciSpec): NetPlan {
  const ns = spec.linux?.namespaces?.find((n) => n.type === 'network');
  if (ns?.path) return { kind: 'netns', path: ns.path };
  return { kind: 'user' };
}

/** The first `nameserver` of a resolv.conf text. */
export function firstNameserver(text: string): string | undefined {
  const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/m.exec(text);
  return m?.[1];
}
