// The containers each platform imports, made from the raw boot disk with qemu-img and tar.
// The OVF descriptor is written here (no Debian tool writes one): the elements OVF 1.0 requires
// and VMware and VirtualBox read — References, DiskSection, NetworkSection, VirtualSystem with
// its hardware (CPU, memory, a SCSI or SATA controller, the disk, a NIC).

import { createHash } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execFileCollect, lastLines } from '../util/exec.js';

/** disks for PC-compatible machines and clouds (amd64 images) */
export const PC_FORMATS = ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'ova', 'gce'] as const;
export type PcFormat = (typeof PC_FORMATS)[number];
/** every format: the PC disks, and the Raspberry Pi 3's SD card (arm64 images; src/export/rpi.ts) */
export const FORMATS = [...PC_FORMATS, 'rpi'] as const;
export type ExportFormat = (typeof FORMATS)[number];

export interface PlatformInfo {
  /** where it goes */
  platforms: string;
  /**
   * kernel fragments beside the image's own and pc + efi. The hypervisor formats share one
   * kernel with the three device sets they may meet (an OVA goes to vSphere or VirtualBox, a VHD
   * to Hyper-V, whose generation-1 VMs emulate the Intel devices): one kernel build, not three.
   */
  fragments: string[];
  /** the devices a test boots it with under QEMU (what the platform gives its VMs) */
  qemuDevices: { nic: string; disk: 'virtio' | 'nvme' | 'pvscsi' | 'ahci' };
}

export const PLATFORMS: Record<PcFormat, PlatformInfo> = {
  raw: { platforms: 'KVM hosts, libvirt, AWS (import-image; NVMe root)', fragments: [], qemuDevices: { nic: 'virtio-net-pci', disk: 'nvme' } },
  qcow2: { platforms: 'OpenStack, libvirt', fragments: [], qemuDevices: { nic: 'virtio-net-pci', disk: 'virtio' } },
  gce: { platforms: 'Google Cloud (disk.raw in a tar.gz)', fragments: [], qemuDevices: { nic: 'virtio-net-pci', disk: 'virtio' } },
  vmdk: { platforms: 'vSphere, AWS (import-image)', fragments: ['vmware', 'emulated', 'hyperv'], qemuDevices: { nic: 'vmxnet3', disk: 'pvscsi' } },
  ova: { platforms: 'vSphere, VirtualBox', fragments: ['vmware', 'emulated', 'hyperv'], qemuDevices: { nic: 'vmxnet3', disk: 'pvscsi' } },
  vhd: { platforms: 'Azure, Hyper-V (fixed VHD)', fragments: ['vmware', 'emulated', 'hyperv'], qemuDevices: { nic: 'e1000', disk: 'ahci' } },
  vhdx: { platforms: 'Hyper-V', fragments: ['vmware', 'emulated', 'hyperv'], qemuDevices: { nic: 'e1000', disk: 'ahci' } },
};

async function tool(cmd: string, args: string[], cwd?: string): Promise<void> {
  const r = await execFileCollect(cmd, args, cwd ? { cwd } : {});
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${lastLines(r.output, 8)}`);
}

/** Turns the raw disk `raw` into `format` at `out` (the raw file is consumed). */
export async function packDisk(raw: string, format: PcFormat, out: string, meta: { name: string; memoryMb: number }): Promise<void> {
  const dir = dirname(raw);
  switch (format) {
    case 'raw':
      return rename(raw, out);
    case 'qcow2':
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-c', raw, out]);
      break;
    case 'vmdk':
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, out]);
      break;
    case 'vhd':
      // Azure takes fixed VHDs whose size is a whole number of MiB; force_size keeps it exact
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=fixed,force_size', raw, out]);
      break;
    case 'vhdx':
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic', raw, out]);
      break;
    case 'gce': {
      // Google Cloud's import format: a file named disk.raw in a gzipped GNU tar
      const diskRaw = join(dir, 'disk.raw');
      await rename(raw, diskRaw);
      await tool('tar', ['--format=oldgnu', '-Sczf', out, '-C', dir, 'disk.raw']);
      await rm(diskRaw, { force: true });
      break;
    }
    case 'ova': {
      const base = meta.name.replace(/[^A-Za-z0-9_.-]/g, '_');
      const vmdk = join(dir, `${base}-disk1.vmdk`);
      await tool('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
      const capacity = (await stat(raw)).size;
      const ovf = join(dir, `${base}.ovf`);
      await writeFile(ovf, ovfDescriptor(base, basename(vmdk), (await stat(vmdk)).size, capacity, meta.memoryMb));
      const mf = join(dir, `${base}.mf`);
      const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
      await writeFile(mf, `SHA256(${basename(ovf)})= ${await sha(ovf)}\nSHA256(${basename(vmdk)})= ${await sha(vmdk)}\n`);
      // the descriptor first: importers read an OVA as a stream
      await tool('tar', ['--format=ustar', '-cf', out, basename(ovf), basename(vmdk), basename(mf)], dir);
      for (const f of [ovf, vmdk, mf]) await rm(f, { force: true });
      break;
    }
  }
  await rm(raw, { force: true });
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** An OVF 1.0 descriptor for one VM with one disk on a SCSI (PVSCSI) controller and one NIC. */
export function ovfDescriptor(name: string, vmdk: string, vmdkBytes: number, capacityBytes: number, memoryMb: number): string {
  const n = esc(name);
  const item = (fields: Record<string, string | number>) =>
    `      <Item>\n${Object.entries(fields).map(([k, v]) => `        <rasd:${k}>${typeof v === 'string' ? esc(v) : v}</rasd:${k}>`).join('\n')}\n      </Item>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="${esc(vmdk)}" ovf:size="${vmdkBytes}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="${capacityBytes}" ovf:capacityAllocationUnits="byte" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The network the unikernel answers on</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="${n}">
    <Info>A unik unikernel: one application and the kernel it needs</Info>
    <Name>${n}</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="other5xLinux64Guest">
      <Info>Linux, 64-bit</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>${n}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
${item({ AllocationUnits: 'hertz * 10^6', Description: 'Number of virtual CPUs', ElementName: '1 virtual CPU', InstanceID: 1, ResourceType: 3, VirtualQuantity: 1 })}
${item({ AllocationUnits: 'byte * 2^20', Description: 'Memory size', ElementName: `${memoryMb} MB of memory`, InstanceID: 2, ResourceType: 4, VirtualQuantity: memoryMb })}
${item({ Description: 'SCSI controller', ElementName: 'SCSI controller 0', InstanceID: 3, ResourceSubType: 'VirtualSCSI', ResourceType: 6 })}
${item({ AddressOnParent: 0, ElementName: 'Hard disk 1', HostResource: 'ovf:/disk/vmdisk1', InstanceID: 4, Parent: 3, ResourceType: 17 })}
${item({ AddressOnParent: 7, AutomaticAllocation: 'true', Connection: 'VM Network', Description: 'VmxNet3 ethernet adapter', ElementName: 'Network adapter 1', InstanceID: 5, ResourceSubType: 'VmxNet3', ResourceType: 10 })}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}
