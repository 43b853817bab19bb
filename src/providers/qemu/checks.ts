import { execFile } from 'node:child_process';
import { cachedKernels } from '../../base/linux/kernel.js';
import { hostArch, type Arch } from '../../model/arch.js';
import type { HostCheck } from '../../model/types.js';
import { which } from '../../util/exec.js';
import { addSystemUserCommand } from '../../util/system-user.js';
import { accelWithoutProbe, type AccelChoice } from './accel.js';
import { QEMU_BINARY } from './args.js';
import { QEMU_USER, type Confinement } from './confine.js';

/** What the QEMU provider's checks ask of it: its choices, made once and cached there. */
export interface QemuCheckDeps {
  arches: readonly Arch[];
  kernelsDir: string;
  /** the accelerator choice already made, if any */
  chosenAccel(arch: Arch): Promise<AccelChoice> | undefined;
  /** makes the choice (a probe guest booting this kernel), cached for every later run */
  chooseAccel(arch: Arch, kernel: string): Promise<AccelChoice>;
  confine(qemu: string): Promise<Confinement>;
}

/**
 * `unik doctor`'s lines for the QEMU provider: each architecture's QEMU (the host's own is
 * required), and for the host's own the accelerator and why, and how QEMU is confined. At most
 * one probe guest boots, the one the first run would boot anyway, and only when the kernel
 * cache has a kernel for it; its choice is kept.
 */
export async function qemuChecks(d: QemuCheckDeps): Promise<HostCheck[]> {
  const host = hostArch();
  const out: HostCheck[] = [];
  for (const arch of d.arches) {
    const q = QEMU_BINARY[arch];
    const native = arch === host;
    const name = `qemu ${arch}`;
    const path = which(q.binary);
    if (!path) {
      out.push({ name, ok: false, required: native, detail: `${q.binary} is not installed: ${arch} images cannot run here`, fix: `apt-get install ${q.pkg}` });
      continue;
    }
    const version = await qemuVersion(path);
    if (version instanceof Error) {
      out.push({ name, ok: false, required: native, detail: `${path} does not run: ${version.message}`, fix: `apt-get install --reinstall ${q.pkg}` });
      continue;
    }
    out.push({ name, ok: true, required: native, detail: `${path}, ${version}${native ? '' : `; ${arch} guests are emulated on this ${host ?? process.arch} host (TCG, much slower)`}` });
    if (native) out.push(await accelCheck(d, arch), await confinementCheck(d, q.binary, q.pkg));
  }
  return out;
}

async function accelCheck(d: QemuCheckDeps, arch: Arch): Promise<HostCheck> {
  const name = 'accelerator';
  let c = await d.chosenAccel(arch);
  if (!c) {
    // the provider's own choice, kept for its runs; any kernel of the cache serves the probe
    // guest (it only has to start booting), and none boots where the choice needs no probe
    const kernel = cachedKernels(d.kernelsDir).find((k) => k.arch === arch);
    c = kernel ? await d.chooseAccel(arch, kernel.file) : accelWithoutProbe(arch);
    if (!c) return { name, ok: true, required: false, detail: '/dev/kvm is usable: KVM if a probe guest boots under it at the first run (no kernel is built yet to probe with)' };
  }
  return { name, ok: c.accel === 'kvm', required: false, detail: c.reason, ...(c.fix ? { fix: c.fix } : {}) };
}

async function confinementCheck(d: QemuCheckDeps, qemu: string, pkg: string): Promise<HostCheck> {
  const name = 'qemu confinement';
  const c = await d.confine(qemu);
  if (!c.sandbox) return { name, ok: false, required: false, detail: c.summary, fix: `use a QEMU built with seccomp: Debian's (apt-get install ${pkg})` };
  if (process.getuid?.() === 0 && c.user?.name !== QEMU_USER)
    return { name, ok: false, required: false, detail: `${c.summary} (there is no ${QEMU_USER} user: ${c.user ? `${c.user.name} is shared with other programs` : 'QEMU keeps root'})`, fix: addSystemUserCommand(QEMU_USER) };
  return { name, ok: true, required: false, detail: c.summary.replace(/^QEMU is confined: /, '') };
}

/** "version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u7)", or why the binary does not run. */
function qemuVersion(qemu: string): Promise<string | Error> {
  return new Promise((resolve) => {
    execFile(qemu, ['--version'], { timeout: 5000 }, (err, stdout) => {
      if (err) return resolve(new Error(err.killed ? 'no answer to --version within 5 s' : err.message.split('\n')[0]!));
      const m = /version (\S+)(?: \(([^)]*)\))?/.exec(stdout);
      resolve(m ? `version ${m[1]}${m[2] ? ` (${m[2]})` : ''}` : stdout.split('\n')[0]!.trim());
    });
  });
}
