// A small Kubernetes CRI v1 client (what kubelet calls) over gRPC on containerd's unix socket.
// The proto is a field-exact subset of k8s.io/cri-api's runtime/v1 api.proto (cri/api.proto).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');
export const CRI_PROTO = join(ROOT, 'test', 'integration', 'cri', 'api.proto');

export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  portMappings?: { protocol?: 'TCP' | 'UDP' | 'SCTP'; containerPort: number; hostPort?: number; hostIp?: string }[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: { namespaceOptions?: { network?: string; pid?: string; ipc?: string }; privileged?: boolean };
    sysctls?: Record<string, string>;
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: { key: string; value: string }[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
  linux?: { resources?: { memoryLimitInBytes?: number; cpuShares?: number }; securityContext?: { privileged?: boolean } };
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  network?: { ip: string; additionalIps: { ip: string }[] };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image?: { image: string };
  imageRef: string;
  reason: string;
  message: string;
  logPath: string;
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number };
  image?: { image: string };
  imageRef: string;
  state: ContainerState;
  createdAt: number;
}

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

let packageCache: grpc.GrpcObject | undefined;
function loadPackage(): grpc.GrpcObject {
  packageCache ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(CRI_PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, arrays: true, objects: false }),
  );
  return packageCache;
}

/** A CRI error carries the gRPC code and containerd's message. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${grpc.status[code] ?? code}: ${details}`);
  }
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly images: grpc.Client;

  /** socket: containerd's grpc socket path (absolute), or a full `unix://` address */
  constructor(
    socket: string,
    private readonly defaultTimeoutMs = 120_000,
  ) {
    const pkg = loadPackage() as any;
    const address = socket.startsWith('unix:') ? socket : `unix://${socket}`;
    const creds = grpc.credentials.createInsecure();
    const opts = { 'grpc.max_receive_message_length': 16 << 20 };
    this.runtime = new pkg.runtime.v1.RuntimeService(address, creds, opts);
    this.images = new pkg.runtime.v1.ImageService(address, creds, opts);
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private call<T>(client: grpc.Client, method: string, req: unknown, timeoutMs = this.defaultTimeoutMs): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`no CRI method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details));
        else resolve(res as T);
      });
    });
  }

  // RuntimeService
  version(): Promise<{ version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' });
  }

  async status(): Promise<{ conditions: { type: string; status: boolean; reason: string; message: string }[] }> {
    const r = await this.call<{ status: { conditions: { type: string; status: boolean; reason: string; message: string }[] } }>(this.runtime, 'Status', {});
    return r.status;
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = '', timeoutMs?: number): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>(this.runtime, 'RunPodSandbox', { config, runtimeHandler }, timeoutMs);
    return r.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string, timeoutMs?: number): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { podSandboxId }, timeoutMs);
  }

  async removePodSandbox(podSandboxId: string, timeoutMs?: number): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { podSandboxId }, timeoutMs);
  }

  async podSandboxStatus(podSandboxId: string, verbose = false): Promise<{ status: PodSandboxStatus; info: Record<string, string> }> {
    return this.call(this.runtime, 'PodSandboxStatus', { podSandboxId, verbose });
  }

  async listPodSandbox(filter?: { id?: string; labelSelector?: Record<string, string> }): Promise<PodSandbox[]> {
    const r = await this.call<{ items: PodSandbox[] }>(this.runtime, 'ListPodSandbox', filter ? { filter } : {});
    return r.items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const r = await this.call<{ containerId: string }>(this.runtime, 'CreateContainer', { podSandboxId, config, sandboxConfig });
    return r.containerId;
  }

  async startContainer(containerId: string, timeoutMs?: number): Promise<void> {
    await this.call(this.runtime, 'StartContainer', { containerId }, timeoutMs);
  }

  /** timeout: grace period in seconds before SIGKILL */
  async stopContainer(containerId: string, timeout: number, timeoutMs?: number): Promise<void> {
    await this.call(this.runtime, 'StopContainer', { containerId, timeout }, timeoutMs ?? (timeout + 60) * 1000);
  }

  async removeContainer(containerId: string, timeoutMs?: number): Promise<void> {
    await this.call(this.runtime, 'RemoveContainer', { containerId }, timeoutMs);
  }

  async containerStatus(containerId: string, verbose = false): Promise<{ status: ContainerStatus; info: Record<string, string> }> {
    return this.call(this.runtime, 'ContainerStatus', { containerId, verbose });
  }

  async listContainers(filter?: { id?: string; podSandboxId?: string; labelSelector?: Record<string, string> }): Promise<Container[]> {
    const r = await this.call<{ containers: Container[] }>(this.runtime, 'ListContainers', filter ? { filter } : {});
    return r.containers;
  }

  // ImageService
  async pullImage(image: string, sandboxConfig?: PodSandboxConfig, timeoutMs?: number): Promise<string> {
    const r = await this.call<{ imageRef: string }>(this.images, 'PullImage', { image: { image }, sandboxConfig }, timeoutMs);
    return r.imageRef;
  }

  async imageStatus(image: string): Promise<{ id: string; repoTags: string[]; size: number } | undefined> {
    const r = await this.call<{ image?: { id: string; repoTags: string[]; size: number } }>(this.images, 'ImageStatus', { image: { image } });
    return r.image ?? undefined;
  }

  async listImages(): Promise<{ id: string; repoTags: string[]; repoDigests: string[]; size: number }[]> {
    const r = await this.call<{ images: { id: string; repoTags: string[]; repoDigests: string[]; size: number }[] }>(this.images, 'ListImages', {});
    return r.images;
  }

  async removeImage(image: string): Promise<void> {
    await this.call(this.images, 'RemoveImage', { image: { image } });
  }
}
