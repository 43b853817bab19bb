// The kernel command line of every unik guest: part of the guest contract, whatever runs it.

export type Accel = 'kvm' | 'tcg';

/** The kernel command line shared by every unik guest. */
export function kernelCmdline(a: { accel: Accel; tscKhz?: number; waitForConfig?: boolean }): string {
  const parts = ['console=ttyS0', 'reboot=t', 'panic=-1', 'quiet', '8250.nr_uarts=2'];
  if (a.accel === 'tcg' && a.tscKhz) parts.push(`tsc_early_khz=${a.tscKhz}`);
  // under TCG the local APIC timer's calibration costs ~50 ms of boot; the PIT ticks instead
  if (a.accel === 'tcg') parts.push('noapictimer');
  // a snapshot template: init reads its config from the control channel (guest/init/init.c)
  if (a.waitForConfig) parts.push('unik.wait');
  return parts.join(' ');
}
