// The conventional-VM reference: examples/go-http's static binary as a systemd service in a
// minimal Debian 12 root (debootstrap minbase + systemd-sysv + udev), booted with Debian's stock
// cloud kernel and its initramfs-tools initrd, on the same QEMU and accelerator as unik, as a
// conventional VM is run: `-M q35`, a virtio-blk root disk, virtio-net-pci, DHCP from slirp.
//
// Built by bench/conventional-vm/build-base.sh (debootstrap; a few minutes) and build-disk.sh
// (adds the binary, `mkfs.ext4 -d` into a sparse raw image), cached under
// $UNIK_BENCH_CACHE/conventional-vm/{base,disk}-<hash of the recipe and inputs>, never rebuilt.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { BENCH_CACHE, ROOT, rssKb, waitOk } from './lib.js';

const RECIPES = join(ROOT, 'bench/conventional-vm');
export const CVM_CACHE = join(BENCH_CACHE, 'conventional-vm');
/** the QEMU machine, stated in the tables */
export const CVM_MACHINE = 'q35, -cpu max -smp 1, virtio-blk (raw, snapshot=on) + virtio-net-pci, slirp';

export interface ConventionalVm {
  dir: string;
  kernel: string;
  initrd: string;
  disk: string;
  kernelVersion: string;
  /** bytes of the sparse disk image actually allocated on the host, and its apparent size */
  diskAllocatedBytes: number;
  diskApparentBytes: number;
  /** bytes of the files in the root tree (apparent), the binary included */
  rootTreeBytes: number;
  kernelBytes: number;
  initrdBytes: number;
  baseHash: string;
  diskHash: string;
  /** seconds spent building now; 0 when everything came from the cache */
  buildSeconds: number;
}

const sha = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
};

/** The Debian mirror apt is configured with (deb822 `URIs:` or a one-line `deb` entry). */
export function aptMirror(): string {
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d').filter((f) => /\.(list|sources)$/.test(f)).map((f) => join('/etc/apt/sources.list.d', f)) : [])];
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s*)?)(\S+)/gm)) if (m[1] && !/security/.test(m[1]) && /debian\/?$/.test(m[1])) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

function run(cmd: string, args: string[], log: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(log, 'a');
    const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}); see ${log}`))));
  });
}

/**
 * The conventional VM for `binary`, from the cache or built now (when `build`; otherwise
 * undefined if not cached).
 */
export async function prepareConventionalVm(binary: string, build: boolean): Promise<ConventionalVm | undefined> {
  const baseScript = readFileSync(join(RECIPES, 'build-base.sh'));
  const diskScript = readFileSync(join(RECIPES, 'build-disk.sh'));
  const baseHash = sha(baseScript);
  const diskHash = sha(baseHash, diskScript, readFileSync(binary));
  const base = join(CVM_CACHE, `base-${baseHash}`);
  const dir = join(CVM_CACHE, `disk-${diskHash}`);
  const t0 = performance.now();
  mkdirSync(CVM_CACHE, { recursive: true });
  if (!existsSync(join(base, 'done'))) {
    if (!build) return undefined;
    const log = `${base}.log`;
    console.error(`conventional VM: building the Debian root with debootstrap (a few minutes, once; log in ${log})`);
    await run('bash', [join(RECIPES, 'build-base.sh'), base, aptMirror()], log);
  }
  if (!existsSync(join(dir, 'done'))) {
    if (!build) return undefined;
    await run('bash', [join(RECIPES, 'build-disk.sh'), base, binary, dir], `${dir}.log`);
  }
  const disk = join(dir, 'disk.img');
  const st = statSync(disk);
  return {
    dir,
    kernel: join(base, 'vmlinuz'),
    initrd: join(base, 'initrd.img'),
    disk,
    kernelVersion: readFileSync(join(base, 'kernel-version'), 'utf8').trim().replace(/^vmlinuz-/, ''),
    diskAllocatedBytes: st.blocks * 512,
    diskApparentBytes: st.size,
    rootTreeBytes: Number(readFileSync(join(dir, 'root-bytes'), 'utf8').trim()),
    kernelBytes: statSync(join(base, 'vmlinuz')).size,
    initrdBytes: statSync(join(base, 'initrd.img')).size,
    baseHash,
    diskHash,
    buildSeconds: (performance.now() - t0) / 1000,
  };
}

export interface CvmBoot {
  /** ms from spawning QEMU to the first HTTP 200 on /ping_test; undefined if it never answered */
  ms?: number;
  pid: number;
  /** host RSS of the QEMU process (kB) once the app answers */
  rssKb: number;
  stop(): Promise<void>;
}

/**
 * Boots the VM (disk opened with snapshot=on, so every boot starts from the same pristine image)
 * and waits for the app. `keep` leaves it running for the caller to stop.
 */
export async function bootConventionalVm(vm: ConventionalVm, memoryMb = 512, deadlineMs = 180_000, keep = false): Promise<CvmBoot> {
  const port = await freePort();
  const args = [
    '-M', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', String(memoryMb),
    '-drive', `file=${vm.disk},if=virtio,format=raw,snapshot=on`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`, '-device', 'virtio-net-pci,netdev=n0',
    '-nographic', '-no-reboot',
    '-kernel', vm.kernel, '-initrd', vm.initrd, '-append', 'root=/dev/vda rw console=ttyS0 panic=-1',
  ];
  const t0 = performance.now();
  const qemu: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'ignore'] });
  let exited = false;
  qemu.on('exit', () => (exited = true));
  const ok = await waitOk(`http://127.0.0.1:${port}/ping_test`, deadlineMs, () => exited);
  const ms = ok ? performance.now() - t0 : undefined;
  const rss = ok ? rssKb(qemu.pid!) : 0;
  const stop = async () => {
    if (exited) return;
    qemu.kill('SIGKILL');
    for (let i = 0; i < 50 && !exited; i++) await sleep(20);
  };
  if (!keep || !ok) await stop();
  return { ms, pid: qemu.pid!, rssKb: rss, stop };
}
