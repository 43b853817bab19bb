// Internal records (camelCase). The daemon's dialects turn them into wire shapes.
import type { MachineArch } from './arch.js';

/** created: never started (Docker's create); pending: booting; running: the app was started */
export type InstanceState = 'created' | 'pending' | 'running' | 'stopped' | 'error';

export interface PortForward {
  hostIp: string;
  hostPort: number;
  guestPort: number;
  protocol: 'tcp' | 'udp';
}

/** What an image holds, as written to images/<id>/manifest.json. */
export interface ImageManifest {
  schemaVersion: 1;
  id: string;
  name: string;
  created: string;
  /** `uname -m`'s name (src/model/arch.ts) */
  arch: MachineArch;
  base: 'linux';
  language: string;
  compiler: string;
  provider: string;
  kernel: { file: string; configHash: string; fragments: string[]; sizeBytes: number };
  root: { kind: 'initramfs'; file: string; sizeBytes: number };
  /** baked at build time, as in 2016 */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  mountPoints: string[];
  /** true: a mount point may be left without a volume (a container image's own Volumes), its files then stay on the root's writable overlay */
  mountPointsOptional?: boolean;
  defaultMemoryMb: number;
  /** ports the app listens on (unik.yaml ports:) */
  ports?: number[];
  /** the registry reference it was pulled from, and that manifest's digest */
  source?: string;
  sourceDigest?: string;
  /** the user the app runs as (the guest init drops to it before exec); absent: root */
  user?: { uid: number; gid: number; groups: number[] };
  /** the signal an orderly stop sends the app ("SIGQUIT"; src/model/signals.ts); absent: SIGTERM */
  stopSignal?: string;
  /** the app's files on a read-only disk (attached as virtio-blk serial unik-root); the initramfs then holds only the init */
  rootDisk?: { file: string; fsType: 'erofs'; sizeBytes: number };
  /** built with --slim: the files kept of the full image's, and the probe that exercised the app */
  slim?: { probe: string; keptFiles: number; totalFiles: number; keptBytes: number; totalBytes: number };
}

export interface ImageRecord {
  id: string;
  name: string;
  provider: string;
  sizeBytes: number;
  created: string;
  manifest: ImageManifest;
}

/** The desired state of an instance: what `run` asked for. */
export interface InstanceSpec {
  env: Record<string, string>;
  memoryMb: number;
  ports: PortForward[];
  /** appended to the image's baked argv */
  args?: string[];
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** its place on a bridged network, fixed when it is created and kept across stop/start; absent: QEMU's user-mode network */
  network?: NetworkAttachment;
  /** a `--slim` build's profiling boot (never stored): the init records the files the app opens */
  profile?: boolean;
}

/** An instance's address on a bridged network. */
export interface NetworkAttachment {
  networkId: string;
  /** its IPv4 address, without the prefix */
  ip: string;
  /** locally administered, derived from the instance id */
  mac: string;
}

/** A bridged network: a Linux bridge on the host, its subnet, gateway (the bridge's own address) and DNS. */
export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'bridge';
  /** A.B.C.D/PREFIX */
  subnet: string;
  gateway: string;
  /** the Linux bridge's name (at most 15 bytes) */
  bridge: string;
  created: string;
  labels: Record<string, string>;
}

/** The observed state, kept up to date by the provider and the reconciler. */
export interface InstanceStatus {
  state: InstanceState;
  pid: number | null;
  exitCode: number | null;
  error: string;
  startedAt: string | null;
  finishedAt: string | null;
  accel: string;
  /**
   * An operation under way whose effect may be half done, written before the effect: a daemon
   * that dies meanwhile finishes or undoes it on start-up. creating: a run's first boot;
   * starting: a start; removing: an rm.
   */
  phase?: 'creating' | 'starting' | 'removing';
}

export interface InstanceRecord {
  id: string;
  name: string;
  imageId: string;
  provider: string;
  created: string;
  spec: InstanceSpec;
  status: InstanceStatus;
}

export interface ProgressEvent {
  step: string;
  message: string;
  percent?: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

export type VolumeType = 'ext4' | 'ext2' | 'fat';

export interface VolumeRecord {
  id: string;
  name: string;
  provider: string;
  type: VolumeType;
  sizeBytes: number;
  created: string;
  attachment: { instanceId: string; mountPoint: string } | null;
}

/** A volume as a provider needs it to boot an instance. */
export interface VolumeMount {
  id: string;
  file: string;
  type: VolumeType;
  mountPoint: string;
}

/** A program a part of unik runs on the daemon host, and the Debian package that has it (a path names a file, e.g. a header). */
export interface HostTool {
  name: string;
  pkg: string;
}

/** One answer of `unik doctor`: what the host has or lacks for one purpose, and what fixes it. */
export interface HostCheck {
  name: string;
  ok: boolean;
  /** a failure stops unik from building or running at all (not just one language or feature) */
  required: boolean;
  /** what was found, or what is missing and what that costs */
  detail: string;
  /** when not ok: the command (or, where none exists, the action) that fixes it */
  fix?: string;
}
