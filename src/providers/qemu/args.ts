import type { PortForward } from '../../model/types.js';
import { kernelCmdline, type Accel } from '../../base/linux/cmdline.js';
import { confinementArgs, type Confinement } from './confine.js';

export interface MachineArgs {
  accel: Accel;
  /** host TSC frequency, given to TCG guests: without it 1 boot in 3 hangs calibrating */
  tscKhz?: number;
  memoryMb: number;
  kernel: string;
  initrd: string;
  name: string;
  ports: PortForward[];
  /** the console's file; absent: QEMU's stdout, which its supervisor reads */
  consoleLog?: string;
  controlSocket: string;
  /** a file that keeps the guest's events even when no one listens (templates); instances have their supervisor */
  controlLog?: string;
  /** virtio-blk disks: the guest finds each by its serial */
  disks: { file: string; serial: string }[];
  /** a tap device instead of user-mode networking (unik-runc in a pod's netns); ports are then ignored */
  tap?: { ifname: string; mac?: string };
  /** guest RAM in a file: shared (a snapshot template writes it) or private (a copy-on-write restore) */
  memoryFile?: { path: string; shared: boolean };
  /** the QMP monitor socket */
  qmpSocket?: string;
  /** start paused, waiting for a migration stream over QMP (a restore from a snapshot) */
  incoming?: boolean;
  /** a snapshot template: the init waits for its config on the control channel */
  waitForConfig?: boolean;
  /** the seccomp sandbox and the user QEMU drops to (see confine.ts): no QEMU starts without it */
  confinement: Confinement;
}

/** A value inside a QEMU option list: a comma would end it and start another option, so it is doubled. */
export function optValue(s: string): string {
  return s.replace(/,/g, ',,');
}


/** QEMU's argv, built from types, never from a shell string. */
export function qemuArgs(a: MachineArgs): string[] {
  const fwd = a.ports.map((p) => `,hostfwd=${p.protocol}:${p.hostIp}:${p.hostPort}-:${p.guestPort}`).join('');
  return [
    '-name', optValue(a.name),
    // microvm: virtio-mmio only; no ACPI/PCI/option ROMs to probe. The RTC stays: without it
    // the kernel waits about a second for a clock that never answers.
    '-M', 'microvm,acpi=off,x-option-roms=off',
    '-accel', a.accel,
    '-cpu', a.accel === 'kvm' ? 'host' : 'max',
    '-m', String(a.memoryMb),
    ...(a.memoryFile
      ? ['-object', `memory-backend-file,id=ram,size=${a.memoryMb}M,mem-path=${optValue(a.memoryFile.path)},share=${a.memoryFile.shared ? 'on' : 'off'}`, '-machine', 'memory-backend=ram']
      : []),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', a.kernel,
    '-initrd', a.initrd,
    '-append', kernelCmdline(a),
    '-netdev', a.tap ? `tap,id=net0,ifname=${optValue(a.tap.ifname)},script=no,downscript=no` : `user,id=net0${fwd}`,
    '-device', `virtio-net-device,netdev=net0${a.tap?.mac ? `,mac=${a.tap.mac}` : ''}`,
    '-device', 'virtio-rng-device',
    // ttyS0: the console (the app's stdout/stderr): QEMU's stdout (to its supervisor), or a file
    '-chardev', a.consoleLog ? `file,id=console,path=${optValue(a.consoleLog)},append=on` : 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    // ttyS1: the control channel (guest events in, stop and signals out)
    '-chardev', `socket,id=control,path=${optValue(a.controlSocket)},server=on,wait=off${a.controlLog ? `,logfile=${optValue(a.controlLog)}` : ''}`,
    '-device', 'isa-serial,chardev=control,iobase=0x2f8,irq=3',
    ...(a.qmpSocket ? ['-qmp', `unix:${optValue(a.qmpSocket)},server=on,wait=off`] : []),
    // the migration stream comes later, over QMP, from a file descriptor QEMU inherited (see snapshot.ts)
    ...(a.incoming ? ['-incoming', 'defer'] : []),
    ...a.disks.flatMap((d, n) => [
      '-drive', `file=${optValue(d.file)},format=raw,if=none,id=disk${n},cache=writeback,discard=unmap`,
      '-device', `virtio-blk-device,drive=disk${n},serial=${optValue(d.serial)}`,
    ]),
    ...confinementArgs(a.confinement),
  ];
}

/** virtio-blk serials are at most 20 bytes: the start of the volume id. */
export function diskSerial(volumeId: string): string {
  return volumeId.slice(0, 20);
}
