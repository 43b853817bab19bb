// The libvirt domain of a unik instance: a PC (i440fx) with ACPI, booting the image's kernel
// directly (no firmware, no boot disk), its console and control lines on two serial ports whose
// output libvirt's virtlogd keeps in size-capped files, and the instance's NIC and volumes.

import type { Accel } from '../../base/linux/cmdline.js';
import { xml } from './virsh.js';

export interface DomainSpec {
  name: string;
  /** a new definition with the same UUID replaces the old one */
  uuid?: string;
  /** the instance's own name, shown by virsh as the domain's title */
  title: string;
  description: string;
  accel: Accel;
  memoryMb: number;
  kernel: string;
  /** absent: the kernel alone (the acceleration probe) */
  initrd?: string;
  cmdline: string;
  /** files on the libvirt host, written by virtlogd (rotated past its max_size) */
  consoleLog: string;
  eventsLog: string;
  /** absent: QEMU's user-mode network */
  bridge?: { bridge: string; tap: string; mac: string };
  /** raw disk images; the guest finds each by its serial */
  disks: { file: string; serial: string }[];
}

export function domainXml(d: DomainSpec): string {
  const disks = d.disks.map(
    (disk, n) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <source file='${xml(disk.file)}'/>
      <target dev='${diskDev(n + 1)}' bus='virtio'/>
      <serial>${xml(disk.serial)}</serial>
    </disk>`,
  );
  const nic = d.bridge
    ? `    <interface type='bridge'>
      <source bridge='${xml(d.bridge.bridge)}'/>
      <target dev='${xml(d.bridge.tap)}'/>
      <mac address='${xml(d.bridge.mac)}'/>
      <model type='virtio'/>
    </interface>`
    : `    <interface type='user'>
      <model type='virtio'/>
    </interface>`;
  return `<domain type='${d.accel === 'kvm' ? 'kvm' : 'qemu'}'>
  <name>${xml(d.name)}</name>
${d.uuid ? `  <uuid>${xml(d.uuid)}</uuid>\n` : ''}  <title>${xml(d.title)}</title>
  <description>${xml(d.description)}</description>
  <memory unit='MiB'>${d.memoryMb}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xml(d.kernel)}</kernel>
${d.initrd ? `    <initrd>${xml(d.initrd)}</initrd>\n` : ''}    <cmdline>${xml(d.cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='${d.accel === 'kvm' ? 'host-passthrough' : 'maximum'}'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='pty'>
      <log file='${xml(d.consoleLog)}' append='on'/>
      <target port='0'/>
    </serial>
    <serial type='pty'>
      <log file='${xml(d.eventsLog)}' append='off'/>
      <target port='1'/>
    </serial>
${nic}
${disks.join('\n')}
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** vda, vdb … vdz, vdaa, vdab …: the name of the Nth virtio disk (vda is never a volume's) */
export function diskDev(n: number): string {
  let name = '';
  for (let i = n + 1; i > 0; i = Math.floor((i - 1) / 26)) name = String.fromCharCode(97 + ((i - 1) % 26)) + name;
  return `vd${name}`;
}
