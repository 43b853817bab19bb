// The kernel command line of every unik guest: part of the guest contract, whatever runs it.
import type { Arch } from '../../model/arch.js';

export type Accel = 'kvm' | 'tcg';

/** The kernel command line shared by every unik guest. */
export function kernelCmdline(a: { arch?: Arch; accel: Accel; tscKhz?: number; waitForConfig?: boolean }): string {
  // arm64 (QEMU virt): the PL011 console; reset and power-off go through PSCI
  const parts = a.arch === 'arm64' ? ['console=ttyAMA0', 'panic=-1', 'quiet'] : ['console=ttyS0', 'reboot=t', 'panic=-1', 'quiet', '8250.nr_uarts=2'];
  if (a.arch !== 'arm64' && a.accel === 'tcg' && a.tscKhz) parts.push(`tsc_early_khz=${a.tscKhz}`);
  // under TCG the local APIC timer's calibration costs ~50 ms of boot; the PIT ticks instead
  if (a.arch !== 'arm64' && a.accel === 'tcg') parts.push('noapictimer');
  // a snapshot template: init reads its config from the control channel (guest/init/init.c)
  if (a.waitForConfig) parts.push('unik.wait');
  return parts.join(' ');
}
