import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Accel } from '../../base/linux/cmdline.js';
import { QEMU_BINARY, qemuArgs, rootDiskArgs } from './args.js';
import type { Arch } from '../../model/arch.js';
import { boundToParent, parentBoundConfinement, privateDir, qemuConfinement } from './confine.js';
import { Qmp } from './qmp.js';
import { StateReceiver, processTree } from './state-receiver.js';

// Boot snapshots: each image is booted once per (memory size, accelerator) as a template, up to
// the point where its init waits for a config; the VM is then saved as its RAM file (written in
// place through a shared memory backend) and its device state (a migration stream of ~50 KB,
// RAM left out with x-ignore-shared). A run restores a copy: QEMU maps the RAM file privately
// (copy on write, so instances of one image share the unchanged pages), loads the device state
// and sends the instance's config. The kernel never boots again; the app starts fresh in every
// instance, with its own argv, env, clock and a reseeded CRNG.
//
// QEMU runs under seccomp with spawn=deny, so it cannot run `exec:cat` to save or load the
// device state, and once it has dropped to an unprivileged user it could not open the
// snapshot's files itself anyway: a restore reads it from a file descriptor QEMU inherits as
// fd 3 (`fd:3` migration); a template sends it to the daemon (see state-receiver.ts).

export { STATE_FD, loadSnapshot } from '../../supervisor/restore.js';

/** What a template boots: an image's kernel and root, and where its snapshots are kept. */
export interface TemplateSource {
  /** the folder of this image's snapshots, one subfolder per memory size and accelerator */
  dir: string;
  kernel: string;
  root: string;
  /** the image's read-only root disk, attached to the template as to every restore of it */
  rootDisk?: string;
  name: string;
  arch: Arch;
}

/** The VM's network back-end: QEMU's user-mode network (unik run) or a tap device (pods). */
export type Network = 'user' | 'tap';

export interface Snapshot {
  dir: string;
  ram: string;
  state: string;
}

/** UNIK_SNAPSHOTS=0 turns boot snapshots off: every start is a cold boot */
export const SNAPSHOTS_ON = process.env.UNIK_SNAPSHOTS !== '0';

/** Whether a start can restore a snapshot: its config frame must be small enough for the serial
 *  control line (a big environment goes in a cold boot's initrd instead). */
export function fitsSnapshot(configFrame: Buffer): boolean {
  return SNAPSHOTS_ON && configFrame.length <= 64 * 1024;
}

/** How long a template boot may take (TCG, a large runtime, a busy host). */
const TEMPLATE_BOOT_MS = 120_000;

export class SnapshotTemplates {
  private readonly inflight = new Map<string, Promise<Snapshot | null>>();
  /** templates that failed in this daemon's life: not retried at every run */
  private readonly failed = new Set<string>();

  constructor(
    /** where the templates' short-lived monitor and control sockets go */
    private readonly socketsDir: string,
    private readonly log: (msg: string) => void,
  ) {}

  // the network back-end is part of the saved state (slirp has its own section), so a tap
  // restore needs a tap template
  private dir(image: TemplateSource, memoryMb: number, accel: Accel, network: Network): string {
    return join(image.dir, `${memoryMb}m-${accel}${network === 'tap' ? '-tap' : ''}`);
  }

  /** The snapshot if it is on disk. */
  existing(image: TemplateSource, memoryMb: number, accel: Accel, network: Network = 'user'): Snapshot | null {
    const dir = this.dir(image, memoryMb, accel, network);
    const s = { dir, ram: join(dir, 'ram'), state: join(dir, 'state') };
    return existsSync(s.state) && existsSync(s.ram) ? s : null;
  }

  /** The snapshot, made now if needed (concurrent callers share one template boot); null if it cannot be made. */
  ensure(image: TemplateSource, memoryMb: number, accel: Accel, tscKhz: number | undefined, network: Network = 'user'): Promise<Snapshot | null> {
    const hit = this.existing(image, memoryMb, accel, network);
    if (hit) return Promise.resolve(hit);
    const key = this.dir(image, memoryMb, accel, network);
    if (this.failed.has(key)) return Promise.resolve(null);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.make(image, memoryMb, accel, tscKhz, network)
        .catch((e: Error) => {
          this.failed.add(key);
          this.log(`boot snapshot of ${image.name} (${memoryMb} MB) not made, instances boot cold: ${e.message}`);
          return null;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /** Drops a snapshot that failed to restore (e.g. QEMU was upgraded); the next run makes a new one. */
  async invalidate(s: Snapshot): Promise<void> {
    await rm(s.dir, { recursive: true, force: true });
  }

  private async make(image: TemplateSource, memoryMb: number, accel: Accel, tscKhz: number | undefined, network: Network): Promise<Snapshot> {
    const final = this.dir(image, memoryMb, accel, network);
    const work = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await privateDir(work);
    await privateDir(this.socketsDir);
    // a template must die with its parent (a daemon stopped mid-template, a killed `unik-runc
    // create`), or it would wait for a config for ever
    const qemu = QEMU_BINARY[image.arch].binary;
    const confinement = parentBoundConfinement(await qemuConfinement(qemu));
    const tag = randomBytes(6).toString('hex');
    const qmpSocket = join(this.socketsDir, `tpl-${tag}.qmp`);
    const controlSocket = join(this.socketsDir, `tpl-${tag}.ctl`);
    const controlLog = join(work, 'control.log');
    const argv = qemuArgs({
      arch: image.arch,
      accel,
      tscKhz,
      memoryMb,
      kernel: image.kernel,
      initrd: image.root,
      name: `unik-template-${image.name.replace(/[^\w.-]/g, '_').slice(0, 64)}`,
      ports: [],
      consoleLog: join(work, 'console.log'),
      controlSocket,
      controlLog,
      disks: rootDiskArgs(image.rootDisk),
      memoryFile: { path: join(work, 'ram'), shared: true },
      // a transient tap (QEMU creates it, and it goes with QEMU): the template never sends a packet
      ...(network === 'tap' ? { tap: { ifname: `unikt${tag.slice(0, 8)}` } } : {}),
      qmpSocket,
      waitForConfig: true,
      confinement,
    });
    const [cmd, ...args] = boundToParent(confinement, [qemu, ...argv]);
    const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited = false;
    child.once('exit', () => (exited = true));
    const started = Date.now();
    try {
      // the template's init says "unik:waiting" once the kernel is up and the root unpacked
      for (;;) {
        if ((await readFile(controlLog, 'utf8').catch(() => '')).includes('unik:waiting')) break;
        if (exited) {
          const consoleTail = (await readFile(join(work, 'console.log'), 'utf8').catch(() => '')).trim().split('\n').slice(-4).join(' | ');
          throw new Error(`the template VM stopped while booting: ${stderr.trim() || consoleTail || 'no output'}`);
        }
        if (Date.now() - started > TEMPLATE_BOOT_MS) throw new Error(`the template VM did not boot within ${TEMPLATE_BOOT_MS / 1000} s`);
        await sleep(5);
      }
      const qmp = await Qmp.connect(qmpSocket, 5000, () => !exited);
      try {
        await qmp.execute('stop');
        // the device state comes back over a connection only this QEMU may make (state-receiver.ts);
        // QEMU waits before sending it until that connection is checked
        await qmp.execute('migrate-set-capabilities', {
          capabilities: [
            { capability: 'x-ignore-shared', state: true },
            { capability: 'pause-before-switchover', state: true },
          ],
        });
        const receiver = await StateReceiver.listen(join(work, 'state'), () => (child.pid ? processTree(child.pid) : []));
        try {
          await qmp.execute('migrate', { uri: receiver.uri });
          // continued once: QEMU may still say pre-switchover just after the continue, and a second
          // continue then finds the migration completed and fails it
          let continued = false;
          for (;;) {
            const m = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
            if (m.status === 'completed') break;
            if (m.status === 'pre-switchover' && !continued) {
              continued = true;
              await receiver.waitGenuine(5000);
              await qmp.execute('migrate-continue', { state: 'pre-switchover' });
              continue;
            }
            if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`saving the template failed: ${m['error-desc'] ?? m.status}`);
            await sleep(5);
          }
          await receiver.finish();
        } finally {
          receiver.close();
        }
        await qmp.execute('quit').catch(() => {});
      } finally {
        qmp.close();
      }
      while (!exited) await sleep(5);
      await writeFile(join(work, 'meta.json'), JSON.stringify({ image: image.name, kernel: image.kernel, memoryMb, accel, created: new Date().toISOString(), bootMs: Date.now() - started }) + '\n');
      if (existsSync(final)) {
        await rm(work, { recursive: true, force: true }); // made meanwhile by another daemon
      } else {
        await rename(work, final);
      }
      this.log(`boot snapshot of ${image.name} (${memoryMb} MB, ${accel}) made in ${((Date.now() - started) / 1000).toFixed(2)} s`);
      return { dir: final, ram: join(final, 'ram'), state: join(final, 'state') };
    } catch (e) {
      if (!exited) child.kill('SIGKILL');
      await rm(work, { recursive: true, force: true });
      throw e;
    } finally {
      await rm(qmpSocket, { force: true });
      await rm(controlSocket, { force: true });
    }
  }
}

