import { archOf } from '../../model/arch.js';
import { hostname } from 'node:os';
import type { Core } from '../../core/core.js';
import type { ImageRecord, InstanceRecord, NetworkRecord, VolumeRecord } from '../../model/types.js';
import { USER_NET } from '../../base/linux/contract.js';
import { USER_MODE } from '../../core/networks.js';

// unik records in Docker's shapes. Every field the docker CLI reads is filled (a missing
// Config makes `docker logs` panic), checked against podman in test/integration/docker-*.

const unix = (iso: string | null) => (iso ? Math.floor(Date.parse(iso) / 1000) : 0);
const ZERO_TIME = '0001-01-01T00:00:00Z';

export function dockerState(i: InstanceRecord): 'created' | 'running' | 'exited' | 'dead' {
  const s = i.status.state;
  return s === 'created' ? 'created' : s === 'running' || s === 'pending' ? 'running' : s === 'error' ? 'dead' : 'exited';
}

/** "Up 3 seconds", "pending", "Exited (0) 2 minutes ago": as the seed showed, pending while booting. */
function statusText(i: InstanceRecord): string {
  const s = i.status;
  if (s.state === 'created') return 'Created';
  if (s.state === 'pending') return 'pending';
  if (s.state === 'running') return `Up ${ago(s.startedAt)}`;
  const code = s.exitCode ?? (s.state === 'error' ? 255 : 0);
  return `Exited (${code}) ${ago(s.finishedAt)} ago`;
}

function ago(iso: string | null): string {
  const sec = iso ? Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000)) : 0;
  if (sec < 1) return 'Less than a second';
  if (sec < 60) return `${sec} second${sec === 1 ? '' : 's'}`;
  const min = Math.round(sec / 60);
  if (min < 60) return `${min} minute${min === 1 ? '' : 's'}`;
  const h = Math.round(min / 60);
  return `${h} hour${h === 1 ? '' : 's'}`;
}

const command = (argv: string[]) => argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ');

/** What a container's shape looks up: read once for a whole list (once per row made a long list quadratic). */
export interface Lookup {
  images: Map<string, ImageRecord>;
  networks: NetworkRecord[];
  volumes: VolumeRecord[];
}

export function lookup(core: Core): Lookup {
  return { images: new Map(core.images.list().map((x) => [x.id, x])), networks: core.networks.list(), volumes: core.volumes.list() };
}

export function containerSummary(core: Core, i: InstanceRecord, look: Lookup = lookup(core)) {
  const img = look.images.get(i.imageId);
  const argv = [...(img?.manifest.argv ?? []), ...(i.spec.args ?? [])];
  return {
    Id: i.id,
    Names: [`/${i.name}`],
    Image: img?.name ?? i.imageId,
    ImageID: `sha256:${i.imageId}`,
    Command: command(argv),
    Created: unix(i.created),
    Ports: i.spec.ports.map((p) => ({ IP: p.hostIp, PrivatePort: p.guestPort, PublicPort: p.hostPort, Type: p.protocol })),
    Labels: i.spec.labels ?? {},
    State: dockerState(i),
    Status: statusText(i),
    HostConfig: { NetworkMode: endpoint(core, i, look.networks).name },
    NetworkSettings: { Networks: networks(core, i, look.networks) },
    Mounts: mounts(core, i, look.volumes),
  };
}

const live = (i: InstanceRecord) => i.status.state === 'running' || i.status.state === 'pending';

const prefixOf = (subnet: string) => Number(subnet.split('/')[1] ?? 0);

/**
 * An instance's one network interface: a bridged network's name, address and MAC, or QEMU's
 * user mode (named "user": 10.0.2.15 behind 10.0.2.2, the same for every instance). Its
 * address is shown only while it runs, as Docker does.
 */
function endpoint(core: Core, i: InstanceRecord, nets?: NetworkRecord[]) {
  const a = i.spec.network;
  if (!a) {
    const [addr, prefix] = USER_NET.ip.split('/');
    return { name: USER_MODE, networkId: '', endpointId: '', ip: live(i) ? addr! : '', prefix: Number(prefix), gateway: USER_NET.gateway, mac: '' };
  }
  const net = (nets ?? core.networks.list()).find((n) => n.id === a.networkId);
  return {
    // a record whose network is gone (it cannot be removed while in use): named by its id
    name: net?.name ?? a.networkId,
    networkId: a.networkId,
    endpointId: i.id,
    ip: live(i) ? a.ip : '',
    prefix: net ? prefixOf(net.subnet) : 0,
    gateway: net?.gateway ?? '',
    mac: a.mac,
  };
}

/** NetworkSettings.Networks: Docker's EndpointSettings, keyed by the network's name. */
function networks(core: Core, i: InstanceRecord, nets?: NetworkRecord[]) {
  const e = endpoint(core, i, nets);
  return {
    [e.name]: {
      IPAMConfig: null,
      Links: null,
      Aliases: null,
      NetworkID: e.networkId,
      EndpointID: e.endpointId,
      Gateway: e.gateway,
      IPAddress: e.ip,
      IPPrefixLen: e.prefix,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      MacAddress: e.mac,
      DriverOpts: null,
    },
  };
}

function mounts(core: Core, i: InstanceRecord, volumes?: VolumeRecord[]) {
  return (volumes ?? core.volumes.list())
    .filter((v) => v.attachment?.instanceId === i.id)
    .map((v) => ({ Type: 'volume', Name: v.name, Source: core.volumes.file(v), Destination: v.attachment!.mountPoint, Driver: 'unik', Mode: '', RW: true, Propagation: '' }));
}

function portMap(i: InstanceRecord) {
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of i.spec.ports) (ports[`${p.guestPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
  return ports;
}

export function containerInspect(core: Core, i: InstanceRecord) {
  const img = core.images.list().find((x) => x.id === i.imageId);
  const m = img?.manifest;
  const s = i.status;
  const env = { ...(m?.env ?? {}), ...i.spec.env };
  const net = endpoint(core, i);
  return {
    Id: i.id,
    Created: i.created,
    Path: m?.argv[0] ?? '',
    Args: [...(m?.argv.slice(1) ?? []), ...(i.spec.args ?? [])],
    State: {
      Status: dockerState(i),
      Running: live(i),
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: s.state === 'error',
      Pid: live(i) ? s.pid ?? 0 : 0,
      ExitCode: s.exitCode ?? (s.state === 'error' ? 255 : 0),
      Error: s.error,
      StartedAt: s.startedAt ?? ZERO_TIME,
      FinishedAt: s.finishedAt ?? ZERO_TIME,
      // unik addition: the guest is booting (pending) or the app was started (running)
      UnikState: s.state,
    },
    Image: `sha256:${i.imageId}`,
    // unikernels have one process: nothing can be exec'd into them
    ExecIDs: null,
    SizeRootFs: img?.sizeBytes ?? 0,
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: core.instances.logFile(i.id).file,
    Name: `/${i.name}`,
    RestartCount: 0,
    Driver: 'unik',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    HostConfig: {
      Binds: mounts(core, i).map((mm) => `${mm.Name}:${mm.Destination}`),
      NetworkMode: net.name,
      PortBindings: portMap(i),
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: i.spec.autoRemove ?? false,
      Memory: i.spec.memoryMb * 1024 * 1024,
      NanoCpus: 1_000_000_000,
      Runtime: i.provider,
    },
    GraphDriver: { Name: 'unik', Data: null },
    Mounts: mounts(core, i),
    Config: {
      Hostname: i.name,
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ExposedPorts: Object.fromEntries(i.spec.ports.map((p) => [`${p.guestPort}/${p.protocol}`, {}])),
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Cmd: i.spec.args ?? [],
      Image: img?.name ?? i.imageId,
      Volumes: null,
      WorkingDir: m?.cwd ?? '/',
      Entrypoint: m?.argv ?? [],
      Labels: i.spec.labels ?? {},
      OnBuild: null,
      // `docker stop`: the guest init passes SIGTERM to the app, then the VM is killed after 10 s
      StopSignal: 'SIGTERM',
      StopTimeout: 10,
    },
    NetworkSettings: {
      Bridge: '',
      SandboxID: '',
      SandboxKey: '',
      HairpinMode: false,
      EndpointID: net.endpointId,
      // IPv4 only
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPv6Gateway: '',
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      Ports: portMap(i),
      IPAddress: net.ip,
      IPPrefixLen: net.prefix,
      Gateway: net.gateway,
      MacAddress: net.mac,
      Networks: networks(core, i),
    },
  };
}

/** `counts`: instances per image id, counted once for a whole list */
export function imageSummary(core: Core, img: ImageRecord, counts?: Map<string, number>) {
  return {
    Id: `sha256:${img.id}`,
    ParentId: '',
    RepoTags: [`${img.name}:latest`],
    RepoDigests: [],
    Created: unix(img.created),
    Size: img.sizeBytes,
    VirtualSize: img.sizeBytes,
    SharedSize: -1,
    Labels: {},
    Containers: counts ? (counts.get(img.id) ?? 0) : core.instances.list().filter((i) => i.imageId === img.id).length,
  };
}

export function imageInspect(img: ImageRecord) {
  const m = img.manifest;
  return {
    Id: `sha256:${img.id}`,
    RepoTags: [`${img.name}:latest`],
    RepoDigests: [],
    Parent: '',
    Comment: `unikernel: ${m.language} on ${m.base} (${m.compiler})`,
    Created: img.created,
    DockerVersion: '',
    Author: '',
    Config: {
      Env: Object.entries(m.env).map(([k, v]) => `${k}=${v}`),
      Cmd: [],
      Entrypoint: m.argv,
      WorkingDir: m.cwd,
      Labels: {},
      Volumes: Object.fromEntries(m.mountPoints.map((p) => [p, {}])),
      ExposedPorts: Object.fromEntries((m.ports ?? []).map((p) => [`${p}/tcp`, {}])),
    },
    Architecture: archOf(m.arch) ?? m.arch,
    Os: 'linux',
    Size: img.sizeBytes,
    VirtualSize: img.sizeBytes,
    GraphDriver: { Name: 'unik', Data: null },
    RootFS: { Type: 'layers', Layers: [] },
    Metadata: { LastTagTime: ZERO_TIME },
  };
}

export function volumeShape(core: Core, v: VolumeRecord) {
  return {
    Name: v.name,
    Driver: 'unik',
    Mountpoint: core.volumes.file(v),
    CreatedAt: v.created,
    Labels: {},
    Scope: 'local',
    Options: { type: v.type, size: String(Math.ceil(v.sizeBytes / 1024 / 1024)) },
  };
}

/**
 * Docker's network shape. Containers: the instances on it that run (Docker lists connected,
 * that is running, endpoints); `docker network ls` gets them too (Docker leaves the list's empty
 * since API 1.28, but clients read the same field, and unik's CLI counts them).
 */
export function networkShape(n: NetworkRecord, instances: InstanceRecord[]) {
  const prefix = prefixOf(n.subnet);
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: 'local',
    Driver: n.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: n.subnet, Gateway: n.gateway }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: Object.fromEntries(
      instances
        .filter((i) => i.spec.network?.networkId === n.id && live(i))
        .map((i) => [i.id, { Name: i.name, EndpointID: i.id, MacAddress: i.spec.network!.mac, IPv4Address: `${i.spec.network!.ip}/${prefix}`, IPv6Address: '' }]),
    ),
    Options: { 'com.docker.network.bridge.name': n.bridge },
    Labels: n.labels ?? {},
  };
}

export function host(): string {
  return hostname();
}
