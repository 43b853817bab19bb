// Debian's real libvirtd, started by the test inside the test's network namespace, so the
// domains' taps meet the bridges the unik daemon makes in there. There is one libvirtd per
// machine (its state lives in /run/libvirt and /var/lib/libvirt): if one already runs, the test
// cannot start its own and says so.

import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetNs } from './netns.js';

const QEMU_CONF = '/etc/libvirt/qemu.conf';

function virshAnswers(): Promise<boolean> {
  return new Promise((resolve) => execFile('timeout', ['5', 'virsh', '-q', '-c', 'qemu:///system', 'version'], (err) => resolve(!err)));
}

function pidOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

export class Libvirtd {
  private startedLogd = false;
  /** qemu.conf as it was, if the test changed it */
  private qemuConf?: string;

  /** Why this machine cannot host the test's libvirtd, or undefined. */
  static async unavailable(): Promise<string | undefined> {
    try {
      execFileSync('which', ['libvirtd', 'virsh', 'virtlogd'], { stdio: 'ignore' });
    } catch {
      return 'libvirt is not installed (npm test installs libvirt-daemon-system libvirt-clients)';
    }
    if (await virshAnswers()) return 'a libvirtd already runs on this machine; the test starts its own inside a network namespace';
    return undefined;
  }

  async start(ns: NetNs): Promise<void> {
    // QEMU under libvirt as root: without udev here /dev/kvm is root's alone (libvirt's probe
    // of it then loops), and volumes are files in a home only root may enter
    const conf = readFileSync(QEMU_CONF, 'utf8');
    if (!/^\s*user\s*=\s*"root"/m.test(conf)) {
      // put back as it was when the test ends
      this.qemuConf = conf;
      appendFileSync(QEMU_CONF, '\n# unik tests: QEMU runs as root (see test/integration/libvirtd.ts)\nuser = "root"\ngroup = "root"\n');
    }
    if (!pidOf('/run/virtlogd.pid')) {
      execFileSync('virtlogd', ['-d']);
      this.startedLogd = true;
    }
    ns.sh(['libvirtd', '-d']);
    for (let i = 0; i < 100 && !(await virshAnswers()); i++) await sleep(100);
    if (!(await virshAnswers())) throw new Error('the test libvirtd did not answer within 10 s');
  }

  /** Stops libvirtd (its domains run on), and virtlogd if the test started it, unless `keepLogs`. */
  async stop(o: { keepLogs?: boolean } = {}): Promise<void> {
    for (const [file, ours] of [['/run/libvirtd.pid', true], ['/run/virtlogd.pid', this.startedLogd && !o.keepLogs]] as const) {
      const pid = ours ? pidOf(file) : undefined;
      if (!pid) continue;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 50 && pidOf(file); i++) await sleep(100);
      // a wedged libvirtd ignores SIGTERM
      if (pidOf(file)) process.kill(pid, 'SIGKILL');
      if (existsSync(file) && !pidOf(file)) execFileSync('rm', ['-f', file]);
    }
    if (this.qemuConf !== undefined) writeFileSync(QEMU_CONF, this.qemuConf);
    this.qemuConf = undefined;
  }
}
