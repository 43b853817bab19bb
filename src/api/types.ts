// The daemon's wire shapes: PascalCase JSON, 2016-compatible fields first, unik additions after.
// Shared by the daemon (which produces them) and src/client (which consumes them).

export type InstanceState = 'created' | 'pending' | 'running' | 'stopped' | 'error' | 'unknown';

export interface PortMapping {
  HostIp: string;
  HostPort: number;
  GuestPort: number;
  Protocol: 'tcp' | 'udp';
}

export interface ImageJson {
  Id: string;
  Name: string;
  SizeMb: number;
  Infrastructure: string;
  Created: string; // RFC 3339
  StageSpec: { ImageFormat: 'folder' };
  RunSpec: {
    DeviceMappings: { MountPoint: string; DeviceName: string }[];
    DefaultInstanceMemory: number;
    MinInstanceDiskMB: number;
    Compiler: string;
  };
  // unik additions
  SizeBytes: number;
  Base: string;
  Language: string;
  Provider: string;
  Args: string[];
  KernelConfigHash: string;
  /** amd64 or arm64 (OCI's names); absent from a 2016 daemon, which built amd64 only */
  Architecture?: string;
}

export interface InstanceJson {
  Id: string;
  Name: string;
  State: InstanceState;
  /** its own address on a bridged network (reachable from the host); 10.0.2.15 in user mode (not reachable) */
  IpAddress: string;
  ImageId: string;
  Infrastructure: string;
  Created: string; // RFC 3339
  // unik additions
  ImageName: string;
  MemoryMb: number;
  Ports: PortMapping[];
  Env: Record<string, string>;
  Pid: number | null;
  ExitCode: number | null;
  Error: string;
  StartedAt: string | null;
  FinishedAt: string | null;
  Accel: string;
  /** the network's name, or "user" for QEMU's user-mode network */
  Network: string;
}

/** POST /instances/run body (2016 names; Ports and Mounts are unik additions / 2016 map). */
export interface RunRequest {
  InstanceName?: string;
  ImageName: string;
  Env?: Record<string, string>;
  MemoryMb?: number;
  Ports?: (string | Partial<PortMapping>)[];
  Mounts?: Record<string, string>;
  NoCleanup?: boolean;
  DebugMode?: boolean;
  /** a network's name or id, or "user"; absent: the daemon's default (unik addition) */
  Network?: string;
}

/** A network, in the Docker Engine API's shape (GET /networks, /networks/{id}); networks were not in the 2016 API. */
export interface NetworkJson {
  Name: string;
  Id: string;
  Created: string;
  Driver: string;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Containers: Record<string, { Name: string; MacAddress: string; IPv4Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** GET /providers (a unik addition): whether each provider works here, and why not */
export interface ProviderJson {
  Name: string;
  Infrastructure: string;
  Available: boolean;
  Reason: string;
}

/** One line of `GET /doctor` (a unik addition). */
export interface HostCheckJson {
  Name: string;
  Ok: boolean;
  /** when not Ok: unik cannot build or run at all (else one language or feature is missing, or it is slower) */
  Required: boolean;
  Detail: string;
  /** when not Ok: the command (or action) that fixes it; '' when Ok */
  Fix: string;
}

export interface ErrorJson {
  message: string;
  code: string;
  hint?: string;
}

/** One line of a streamed build (POST /images/:name/create with Accept: application/x-ndjson). */
export type BuildEvent =
  | { Progress: { Step: string; Message: string; Percent?: number } }
  | { Image: ImageJson }
  | { Error: ErrorJson & { Status: number } };

export const NDJSON = 'application/x-ndjson';

export type VolumeType = 'ext4' | 'ext2' | 'fat';

export interface VolumeJson {
  Id: string;
  Name: string;
  SizeMb: number;
  /** the instance id it is attached to, or "" (2016) */
  Attachment: string;
  Infrastructure: string;
  Created: string; // RFC 3339
  // unik additions
  SizeBytes: number;
  Type: VolumeType;
  /** where it is mounted in the attached instance, or "" */
  MountPoint: string;
  AttachedInstanceName: string;
  /** set when something is wrong with it, e.g. its disk file is missing */
  Error: string;
}
