import { archOf } from '../../model/arch.js';
import type { HostCheckJson, ImageJson, InstanceJson, VolumeJson } from '../../api/types.js';
import type { HostCheck, ImageRecord, InstanceRecord, VolumeRecord } from '../../model/types.js';
import { USER_NET } from '../../base/linux/contract.js';

const MB = 1024 * 1024;

export function imageJson(i: ImageRecord, infrastructure: string): ImageJson {
  const m = i.manifest;
  return {
    Id: i.id,
    Name: i.name,
    SizeMb: Math.ceil(i.sizeBytes / MB),
    Infrastructure: infrastructure,
    Created: i.created,
    StageSpec: { ImageFormat: 'folder' },
    RunSpec: {
      DeviceMappings: m.mountPoints.map((mp, n) => ({ MountPoint: mp, DeviceName: `virtio-blk${n}` })),
      DefaultInstanceMemory: m.defaultMemoryMb,
      MinInstanceDiskMB: 0,
      Compiler: m.compiler,
    },
    SizeBytes: i.sizeBytes,
    Base: m.base,
    Language: m.language,
    Provider: i.provider,
    Args: m.argv.slice(1),
    KernelConfigHash: m.kernel.configHash,
    Architecture: archOf(m.arch) ?? m.arch,
  };
}

export function instanceJson(i: InstanceRecord, imageName: string, infrastructure: string, network: string): InstanceJson {
  const s = i.status;
  const live = s.state === 'running' || s.state === 'pending';
  return {
    Id: i.id,
    Name: i.name,
    State: s.state,
    // bridged: its own address, fixed at creation (reachable from the host); user mode: QEMU's
    // private 10.0.2.15, which the host reaches only through Ports
    IpAddress: i.spec.network ? i.spec.network.ip : live ? USER_NET.ip.split('/')[0]! : '',
    ImageId: i.imageId,
    Infrastructure: infrastructure,
    Created: i.created,
    ImageName: imageName,
    MemoryMb: i.spec.memoryMb,
    Ports: i.spec.ports.map((p) => ({ HostIp: p.hostIp, HostPort: p.hostPort, GuestPort: p.guestPort, Protocol: p.protocol })),
    Env: i.spec.env,
    Pid: live ? s.pid : null,
    ExitCode: s.exitCode,
    Error: s.error,
    StartedAt: s.startedAt,
    FinishedAt: s.finishedAt,
    Accel: s.accel,
    Network: network,
  };
}

export function volumeJson(v: VolumeRecord, infrastructure: string, instanceName: string, problem: string): VolumeJson {
  return {
    Id: v.id,
    Name: v.name,
    SizeMb: Math.ceil(v.sizeBytes / MB),
    Attachment: v.attachment?.instanceId ?? '',
    Infrastructure: infrastructure,
    Created: v.created,
    SizeBytes: v.sizeBytes,
    Type: v.type,
    MountPoint: v.attachment?.mountPoint ?? '',
    AttachedInstanceName: instanceName,
    Error: problem,
  };
}

export function hostCheckJson(c: HostCheck): HostCheckJson {
  return { Name: c.name, Ok: c.ok, Required: c.required, Detail: c.detail, Fix: c.ok ? '' : (c.fix ?? '') };
}
