// `unik export --format rpi`: an SD card for the Raspberry Pi 3. The Pi's boot ROM reads the
// first FAT partition of an MBR disk; its firmware reads config.txt there and loads the kernel
// (kernel8.img: an uncompressed arm64 Image), the board's device tree and the initrd (the image
// root and its config), and gives the kernel cmdline.txt. Written as an ordinary user with
// Debian's tools on an image file (sfdisk, mkfs.fat, mtools), as the PC disks are.
//
// The firmware itself (bootcode.bin, start.elf, fixup.dat) is Broadcom's, in Debian's
// non-free-firmware section (package raspi-firmware): it is copied in when the host has it, and
// the card says what to add when it does not.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { tool } from './disk.js';

/** Debian's raspi-firmware puts the boot firmware here */
export const RPI_FIRMWARE_DIR = process.env.UNIK_RPI_FIRMWARE || '/usr/lib/raspi-firmware';
const FIRMWARE_FILES = ['bootcode.bin', 'start.elf', 'fixup.dat'];
export const RPI_DTB = 'bcm2837-rpi-3-b.dtb';
/** the console is the mini UART on the pin header (ttyS1); the address comes by DHCP on the USB Ethernet */
export const RPI_CMDLINE = 'console=ttyS1,115200 panic=-1 quiet ip=dhcp unik.drive';
const MIB = 1024 * 1024;

export interface RpiParts {
  /** the gzipped arm64 Image from the kernel cache */
  kernelGz: string;
  dtb: string;
  initrd: string;
  name: string;
}

export function configTxt(name: string): string {
  return [
    `# unik: ${name.replace(/[^\w.-]/g, '_')}, a unikernel for the Raspberry Pi 3`,
    'arm_64bit=1',
    'kernel=kernel8.img',
    'initramfs initrd.img followkernel',
    `device_tree=${RPI_DTB}`,
    // the mini UART's clock is tied to the core's: fixed, so the console keeps its baud rate
    'enable_uart=1',
    '',
  ].join('\n');
}

/** Writes the SD card image; returns whether the Pi's firmware went in (else the card says how to add it). */
export async function writeRpiCard(out: string, p: RpiParts, work: string): Promise<{ firmware: boolean }> {
  await mkdir(work, { recursive: true });
  const kernel = join(work, 'kernel8.img');
  await writeFile(kernel, gunzipSync(await readFile(p.kernelGz), { maxOutputLength: 256 * MIB }));
  const files: [string, string][] = [[kernel, '::/kernel8.img'], [p.dtb, `::/${RPI_DTB}`], [p.initrd, '::/initrd.img']];
  const cfg = join(work, 'config.txt');
  await writeFile(cfg, configTxt(p.name));
  const cmdline = join(work, 'cmdline.txt');
  await writeFile(cmdline, RPI_CMDLINE + '\n');
  files.push([cfg, '::/config.txt'], [cmdline, '::/cmdline.txt']);
  const firmware = FIRMWARE_FILES.every((f) => existsSync(join(RPI_FIRMWARE_DIR, f)));
  if (firmware) for (const f of FIRMWARE_FILES) files.push([join(RPI_FIRMWARE_DIR, f), `::/${f}`]);
  else {
    const note = join(work, 'FIRMWARE.txt');
    await writeFile(note, `This card needs the Raspberry Pi's boot firmware beside these files: ${FIRMWARE_FILES.join(', ')}.\r\nCopy them here from Debian's raspi-firmware package (non-free-firmware) or from github.com/raspberrypi/firmware (boot/).\r\n`);
    files.push([note, '::/FIRMWARE.txt']);
  }
  let payload = 0;
  for (const [f] of files) payload += (await stat(f)).size;
  // FAT32 wants 33 MiB at least; the whole card a power of two (QEMU's SD card model requires it)
  const partMib = Math.max(40, Math.ceil((payload * 1.15) / MIB) + 8);
  let totalMib = 64;
  while (totalMib < partMib + 1) totalMib *= 2;
  await rm(out, { force: true });
  await writeFile(out, '');
  await tool('truncate', ['-s', String(totalMib * MIB), out]);
  // one partition from 1 MiB to the end: FAT32 with LBA (0x0c), which the boot ROM reads
  await tool('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', out], `label: dos\nstart=2048, type=c, bootable\n`);
  const sectors = totalMib * 2048 - 2048;
  await tool('mkfs.fat', ['-F', '32', '-n', 'UNIKBOOT', '-h', '2048', '--offset=2048', out, String(sectors / 2)]);
  const img = `${out}@@${MIB}`;
  for (const [from, to] of files) await tool('mcopy', ['-i', img, from, to]);
  return { firmware };
}
