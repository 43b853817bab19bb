import type { PortForward } from '../../model/types.js';
import { kernelCmdline, type Accel } from '../../base/linux/cmdline.js';
import { confinementArgs, type Confinement } from './confine.js';
import type { Arch } from '../../model/arch.js';

/** The QEMU of each architecture, and the Debian package that has it. */
export const QEMU_BINARY: Record<Arch, { binary: string; pkg: string }> = {
  amd64: { binary: process.env.UNIK_QEMU || 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
  arm64: { binary: process.env.UNIK_QEMU_ARM64 || 'qemu-system-aarch64', pkg: 'qemu-system-arm' },
};

/**
 * The machine: microvm on x86 (virtio-mmio only; no ACPI/PCI/option ROMs to probe; the RTC
 * stays: without it the kernel waits about a second for a clock that never answers). On arm64
 * the virt machine, which is as bare: a device tree, virtio-mmio transports, one PL011 UART
 * and the PL031 clock. Under TCG its CPU is a Cortex-A72 rather than `max`: max adds pointer
 * authentication and SVE, which TCG emulates slowly.
 */
export function machineOptions(arch: Arch, accel: Accel): string[] {
  const acc = accelOption(accel);
  if (arch === 'arm64') return ['-M', accel === 'kvm' ? 'virt,gic-version=host' : 'virt', '-accel', acc, '-cpu', accel === 'kvm' ? 'host' : 'cortex-a72'];
  return ['-M', 'microvm,acpi=off,x-option-roms=off', '-accel', acc, '-cpu', accel === 'kvm' ? 'host' : 'max'];
}

/**
 * TCG's translated-code buffer, in MiB. It fills with translated guest code until full, then is
 * flushed and refilled, so an instance ends up holding as much of it as its code needs, up to
 * the cap: QEMU's own cap (1 GiB) is sized for a whole OS. An idle go-http fills 22 MiB
 * (bench/tcg-buffer.ts): at 32 MiB it never flushes and answers as fast as with QEMU's default;
 * at 16 MiB it holds 6-7 MB less and answers its first request 40-55 ms later, at 8 MiB ~0.1 s
 * later, at 4 MiB it thrashes (7 s for 200 requests). UNIK_TCG_TB_MB trades speed for density.
 */
export const TCG_TB_MB = tbMb(process.env.UNIK_TCG_TB_MB);

/** UNIK_TCG_TB_MB when it is a whole number of MiB QEMU takes (1-2048), else 32. */
function tbMb(v: string | undefined): number {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 2048 ? n : 32;
}

/** The -accel value: the accelerator, with TCG's buffer size. */
function accelOption(accel: Accel): string {
  return accel === 'tcg' ? `tcg,tb-size=${TCG_TB_MB}` : accel;
}

/** The control channel's device: a second 16550 on x86; a virtio console (hvc0) on arm64, whose virt machine has one UART. */
function controlDevice(arch: Arch): string[] {
  return arch === 'arm64' ? ['-device', 'virtio-serial-device', '-device', 'virtconsole,chardev=control'] : ['-device', 'isa-serial,chardev=control,iobase=0x2f8,irq=3'];
}

export interface MachineArgs {
  arch: Arch;
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
  /** virtio-blk disks: the guest finds each by its serial (a read-only one: an image's root disk) */
  disks: { file: string; serial: string; readOnly?: boolean }[];
  /** user-mode networking with restrict=on: the guest reaches nothing (forwarded ports still reach it) */
  isolatedNet?: boolean;
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
    ...machineOptions(a.arch, a.accel),
    '-m', String(a.memoryMb),
    ...(a.memoryFile
      ? ['-object', `memory-backend-file,id=ram,size=${a.memoryMb}M,mem-path=${optValue(a.memoryFile.path)},share=${a.memoryFile.shared ? 'on' : 'off'}`, '-machine', 'memory-backend=ram']
      : []),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', a.kernel,
    '-initrd', a.initrd,
    '-append', kernelCmdline(a),
    '-netdev', a.tap ? `tap,id=net0,ifname=${optValue(a.tap.ifname)},script=no,downscript=no` : `user,id=net0${a.isolatedNet ? ',restrict=on' : ''}${fwd}`,
    '-device', `virtio-net-device,netdev=net0${a.tap?.mac ? `,mac=${a.tap.mac}` : ''}`,
    '-device', 'virtio-rng-device',
    // ttyS0 (ttyAMA0 on arm64): the console (the app's stdout/stderr): QEMU's stdout (to its supervisor), or a file
    '-chardev', a.consoleLog ? `file,id=console,path=${optValue(a.consoleLog)},append=on` : 'stdio,id=console,signal=off',
    '-serial', 'chardev:console',
    // ttyS1 (hvc0 on arm64): the control channel (guest events in, stop and signals out)
    '-chardev', `socket,id=control,path=${optValue(a.controlSocket)},server=on,wait=off${a.controlLog ? `,logfile=${optValue(a.controlLog)}` : ''}`,
    ...controlDevice(a.arch),
    ...(a.qmpSocket ? ['-qmp', `unix:${optValue(a.qmpSocket)},server=on,wait=off`] : []),
    // the migration stream comes later, over QMP, from a file descriptor QEMU inherited (see snapshot.ts)
    ...(a.incoming ? ['-incoming', 'defer'] : []),
    ...a.disks.flatMap((d, n) => [
      '-drive', `file=${optValue(d.file)},format=raw,if=none,id=disk${n},${d.readOnly ? 'readonly=on' : 'cache=writeback,discard=unmap'}`,
      '-device', `virtio-blk-device,drive=disk${n},serial=${optValue(d.serial)}`,
    ]),
    ...confinementArgs(a.confinement),
  ];
}

/** The serial of an image's root disk (the init looks for it; volume serials are hex ids, so never this). */
export const ROOT_DISK_SERIAL = 'unik-root';

/** An image's root disk, first of the disks (a restore needs the template's device order): attached read-only. */
export function rootDiskArgs(file: string | undefined): MachineArgs['disks'] {
  return file ? [{ file, serial: ROOT_DISK_SERIAL, readOnly: true }] : [];
}

/** virtio-blk serials are at most 20 bytes: the start of the volume id. */
export function diskSerial(volumeId: string): string {
  return volumeId.slice(0, 20);
}
