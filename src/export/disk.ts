// A bootable disk for PC-compatible machines and clouds, written as an ordinary user with
// Debian's tools on image files (no root, no loop devices): an MBR with one FAT partition
// (type EF, active) that both firmwares boot.
// - BIOS: syslinux's MBR code, its boot sector and ldlinux (installed by `syslinux` through
//   mtools), loading the kernel and the initrd named in syslinux.cfg.
// - UEFI: \EFI\BOOT\BOOTX64.EFI, a unified kernel image: systemd's EFI stub with the kernel,
//   the initrd and the command line as sections (objcopy), so no loader or config is needed.
// Hand-written only the order of these steps and the section layout: no Debian tool does both
// firmwares on one disk image without root.

import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileCollect, lastLines } from '../util/exec.js';

export type Firmware = 'bios' | 'uefi' | 'both';

export const SYSLINUX_MBR = '/usr/lib/syslinux/mbr/mbr.bin';
export const EFI_STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';
const MIB = 1024 * 1024;
/** the partition starts at 1 MiB, as every partitioning tool does today */
const PART_START = MIB;

/** Runs one of Debian's disk tools; its last lines of output make the error. */
export async function tool(cmd: string, args: string[], input?: string): Promise<void> {
  const r = await execFileCollect(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${lastLines(r.output, 8)}`);
}

export interface DiskParts {
  kernel: string;
  /** the image root and its default config, as one initrd */
  initrd: string;
  cmdline: string;
  firmware: Firmware;
}

/** A unified kernel image: systemd's stub, then our sections after its own. */
export async function writeUki(out: string, p: Omit<DiskParts, 'firmware'>, work: string): Promise<void> {
  const cmdline = join(work, 'cmdline');
  const osrel = join(work, 'os-release');
  await writeFile(cmdline, p.cmdline + '\0');
  await writeFile(osrel, 'ID=unik\nNAME=unik\nPRETTY_NAME="a unik unikernel"\n');
  const kernelSize = (await stat(p.kernel)).size;
  const align = (n: number) => Math.ceil(n / MIB) * MIB;
  const linuxAt = 0x2000000;
  const initrdAt = align(linuxAt + kernelSize);
  const hex = (n: number) => `0x${n.toString(16)}`;
  await tool('objcopy', [
    '--add-section', `.osrel=${osrel}`, '--change-section-vma', '.osrel=0x20000',
    '--add-section', `.cmdline=${cmdline}`, '--change-section-vma', '.cmdline=0x30000',
    '--add-section', `.linux=${p.kernel}`, '--change-section-vma', `.linux=${hex(linuxAt)}`,
    '--add-section', `.initrd=${p.initrd}`, '--change-section-vma', `.initrd=${hex(initrdAt)}`,
    EFI_STUB, out,
  ]);
}

/** Writes the raw disk; returns its size in bytes (a whole number of MiB, as Azure requires). */
export async function writeBootDisk(out: string, p: DiskParts, work: string): Promise<number> {
  await mkdir(work, { recursive: true });
  const files: [string, string][] = [];
  if (p.firmware !== 'uefi') {
    files.push([p.kernel, '::/vmlinuz'], [p.initrd, '::/initrd.img']);
    const cfg = join(work, 'syslinux.cfg');
    await writeFile(cfg, ['DEFAULT unik', 'PROMPT 0', 'TIMEOUT 0', 'LABEL unik', '  LINUX /vmlinuz', '  INITRD /initrd.img', `  APPEND ${p.cmdline}`, ''].join('\n'));
    files.push([cfg, '::/syslinux.cfg']);
  }
  if (p.firmware !== 'bios') {
    const uki = join(work, 'BOOTX64.EFI');
    await writeUki(uki, p, work);
    files.push([uki, '::/EFI/BOOT/BOOTX64.EFI']);
  }
  let payload = 0;
  for (const [f] of files) payload += (await stat(f)).size;
  // room for the files, FAT's own tables and slack; FAT32 wants 33 MiB at least
  const partMib = Math.max(40, Math.ceil((payload * 1.15) / MIB) + 8);
  const total = PART_START + partMib * MIB;
  await rm(out, { force: true });
  await writeFile(out, '');
  await tool('truncate', ['-s', String(total), out]);
  // one partition: type EF (the ESP, which OVMF looks for), marked active (for the MBR code)
  await tool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', out], `label: dos\nstart=${PART_START / 512}, type=ef, bootable\n`);
  await tool('mkfs.fat', ['-F', '32', '-n', 'UNIKBOOT', '-h', String(PART_START / 512), `--offset=${PART_START / 512}`, out, String(partMib * 1024)]);
  const img = `${out}@@${PART_START}`;
  if (p.firmware !== 'bios') await tool('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT']);
  for (const [from, to] of files) await tool('mcopy', ['-i', img, from, to]);
  if (p.firmware !== 'uefi') {
    await tool('syslinux', ['--offset', String(PART_START), '--install', out]);
    // syslinux's MBR code (440 bytes), which chains to the active partition; the table stays
    const mbr = await readFile(SYSLINUX_MBR);
    const fh = await open(out, 'r+');
    try {
      await fh.write(mbr, 0, 440, 0);
    } finally {
      await fh.close();
    }
  }
  return total;
}

