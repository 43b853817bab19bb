import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Accel } from '../../base/linux/cmdline.js';
import { confinementArgs, type Confinement } from './confine.js';
import { QEMU_BINARY, machineOptions } from './args.js';
import { hostArch, type Arch } from '../../model/arch.js';

export interface AccelChoice {
  accel: Accel;
  reason: string;
  /** with TCG on the host's own architecture: what would give it KVM */
  fix?: string;
}

const PROBE_DEADLINE_MS = 8000;

/**
 * Chooses KVM only if a probe guest really boots under it within a deadline: a /dev/kvm that
 * opens is not proof (a nested "PVM" host opens it and then hangs every ordinary guest).
 * UNIK_ACCEL=kvm|tcg skips the probe. A guest of another architecture than the host's is
 * always emulated (TCG).
 */
export async function chooseAccel(arch: Arch, kernel: string, confinement: Confinement): Promise<AccelChoice> {
  const known = accelWithoutProbe(arch);
  if (known) return known;
  const result = await probe(arch, kernel, confinement);
  if (result === 'booted') return { accel: 'kvm', reason: 'KVM (a probe guest booted)' };
  const why = result === 'timeout' ? `did not boot within ${PROBE_DEADLINE_MS / 1000} s` : `failed (${result})`;
  return {
    accel: 'tcg',
    reason: `/dev/kvm is present but a probe guest under KVM ${why}: using TCG software emulation (much slower)`,
    fix: "nothing on this host: its KVM does not run guests (often a nested hypervisor's; see `dmesg | grep -i kvm`); UNIK_ACCEL=tcg skips the probe at the daemon's start",
  };
}

/** The choice when no probe guest is needed to make it (another architecture, UNIK_ACCEL, no usable /dev/kvm); undefined when one is. */
export function accelWithoutProbe(arch: Arch): AccelChoice | undefined {
  const host = hostArch();
  if (arch !== host) return { accel: 'tcg', reason: `${arch} guests on this ${host ?? process.arch} host: TCG emulation (much slower than KVM on an ${arch} host)` };
  const forced = process.env.UNIK_ACCEL;
  if (forced === 'kvm') return { accel: 'kvm', reason: 'UNIK_ACCEL=kvm' };
  if (forced === 'tcg') return { accel: 'tcg', reason: 'UNIK_ACCEL=tcg', fix: 'start the daemon without UNIK_ACCEL (KVM is then used if a probe guest boots under it)' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: 'no usable /dev/kvm: using TCG software emulation (much slower)', fix: kvmFix() };
  }
  return undefined;
}

/** What gives this host a usable /dev/kvm: access to it, its module, or virtualization the CPU does not offer. */
function kvmFix(): string {
  if (existsSync('/dev/kvm')) return `usermod -aG kvm ${userInfo().username} (then log in again and restart the daemon), or run the daemon as root`;
  if (process.arch !== 'x64') return 'no KVM in this kernel or machine: on a VM, turn on nested virtualization on the host that runs it';
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // no /proc: say what to look for
  }
  if (/\bvmx\b/.test(flags)) return 'modprobe kvm_intel';
  if (/\bsvm\b/.test(flags)) return 'modprobe kvm_amd';
  if (/\bhypervisor\b/.test(flags)) return "this VM's CPU offers no virtualization: turn on nested virtualization on the host that runs this VM";
  return "this CPU offers no virtualization (no vmx or svm flag): turn it on in the machine's firmware settings";
}

/** Boots the kernel with no root: it prints, panics, resets, and -no-reboot ends QEMU. Confined
 *  as every VM is: the kernel is an image's, maybe a pulled one. */
function probe(arch: Arch, kernel: string, confinement: Confinement): Promise<'booted' | 'timeout' | string> {
  return new Promise((resolve) => {
    // under coreutils' timeout, which ends it even if this process dies meanwhile (a probe QEMU
    // drops to an unprivileged user, so no parent-death signal could)
    const child = spawn(
      'timeout',
      ['-s', 'KILL', String(PROBE_DEADLINE_MS / 1000), QEMU_BINARY[arch].binary, ...machineOptions(arch, 'kvm'), '-m', '64', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
        '-kernel', kernel, '-append', arch === 'arm64' ? 'console=ttyAMA0 panic=-1' : 'console=ttyS0 panic=-1 reboot=t', '-serial', 'stdio', ...confinementArgs(confinement)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // a backstop: timeout passes SIGTERM on to QEMU
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, PROBE_DEADLINE_MS + 2000);
    child.on('error', (e) => resolve(e.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut || code === 137) resolve('timeout');
      else if (code === 0 && /Linux version|Kernel panic/.test(out)) resolve('booted');
      else resolve(err.trim().split('\n')[0] || `QEMU exit status ${code}`);
    });
  });
}

/** The host TSC in kHz, from /proc/cpuinfo (TCG guests calibrate against it). */
export function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
