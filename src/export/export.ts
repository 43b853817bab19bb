// unik export: an image as a bootable disk for a platform. Its kernel is the image's own
// fragments plus what PC-compatible machines need (pc: PCI, ACPI, virtio-pci, NVMe, DHCP; efi)
// and the platform's devices; the root is the image's, with its default config (argv, env) as a
// second archive; a config drive attached at boot overrides that config (no control channel on
// a cloud), and the network comes from DHCP unless the drive gives an address.

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureKernel } from '../base/linux/kernel.js';
import { archOf } from '../model/arch.js';
import { failedPrecondition } from '../model/errors.js';
import { signalNumber } from '../model/signals.js';
import { writeStartInitrd, type BootConfig } from '../base/linux/contract.js';
import type { ImageRecord, ProgressFn } from '../model/types.js';
import { writeBootDisk, type Firmware } from './disk.js';
import { PLATFORMS, packDisk, type ExportFormat } from './formats.js';
import { RPI_DTB, writeRpiCard } from './rpi.js';

/** the command line of an exported kernel: DHCP unless a config drive gives an address */
export const EXPORT_CMDLINE = 'console=ttyS0 panic=-1 quiet ip=dhcp unik.drive';

export function exportFragments(image: ImageRecord, format: ExportFormat): string[] {
  const own = image.manifest.kernel.fragments;
  // the Pi boots from its firmware with the app in the initrd: its board, nothing of a PC's
  const want = format === 'rpi' ? [...own, 'rpi'] : [...own, 'block', 'fat', 'pc', 'efi', ...PLATFORMS[format].fragments];
  return [...new Set(want)];
}

/** PC disks boot amd64 images, the Pi's card arm64 ones: anything else is refused before work starts. */
export function checkExportArch(image: ImageRecord, format: ExportFormat): void {
  const arch = archOf(image.manifest.arch);
  // the exported disk holds the kernel and initrd; a second disk for the root is not made yet
  if (image.manifest.rootDisk)
    throw failedPrecondition('ROOT_DISK_NOT_EXPORTABLE', `image ${image.name} keeps its files on a read-only root disk, which unik export does not write yet`, `rebuild it with its root in the initramfs (unik.yaml rootDisk: false) to export it`);
  if (format === 'rpi' && arch !== 'arm64')
    throw failedPrecondition('WRONG_ARCH', `image ${image.name} is for ${arch ?? image.manifest.arch}; a Raspberry Pi card needs an arm64 image`, `build it for the Pi: unik push NAME PATH --arch arm64`);
  if (format !== 'rpi' && arch !== 'amd64')
    throw failedPrecondition('WRONG_ARCH', `image ${image.name} is for ${arch ?? image.manifest.arch}; ${format} disks boot amd64 images`, 'export arm64 images with --format rpi, or build the image for amd64');
}

export interface ExportRequest {
  image: ImageRecord;
  imageDir: string;
  kernelsDir: string;
  format: ExportFormat;
  firmware: Firmware;
  /** a fresh folder for the work; the result is written in it */
  work: string;
  progress?: ProgressFn;
}

/** Writes the exported file; returns its path (inside `work`) and the file name to offer. */
export async function exportImage(r: ExportRequest): Promise<{ file: string; fileName: string }> {
  const progress = r.progress ?? (() => {});
  const m = r.image.manifest;
  checkExportArch(r.image, r.format);
  const arch = r.format === 'rpi' ? 'arm64' : 'amd64';
  await mkdir(r.work, { recursive: true });
  const fragments = exportFragments(r.image, r.format);
  progress({ step: 'kernel', message: `kernel for ${r.format} (${fragments.join(', ')})` });
  const kernel = await ensureKernel(r.kernelsDir, fragments, progress, arch);

  // the image's own config, as a cold boot's: what a config drive does not override
  const config: BootConfig = {
    argv: m.argv, env: m.env, cwd: m.cwd, hostname: r.image.name, time: Date.now() / 1000,
    ...(m.user ? { user: m.user } : {}),
    ...(m.stopSignal ? { stopSignal: signalNumber(m.stopSignal) } : {}),
  };
  const initrd = join(r.work, 'initrd.img');
  await writeStartInitrd(initrd, join(r.imageDir, m.root.file), config);

  if (r.format === 'rpi') {
    const fileName = `${r.image.name}.rpi.img`;
    const out = join(r.work, fileName);
    progress({ step: 'disk', message: 'Raspberry Pi 3 SD card (FAT boot partition: config.txt, kernel8.img, the device tree, the initrd)' });
    const { firmware } = await writeRpiCard(out, { kernelGz: kernel.file, dtb: kernel.dtbs[RPI_DTB]!, initrd, name: r.image.name }, join(r.work, 'parts'));
    if (!firmware) progress({ step: 'disk', message: "warning: the Pi's boot firmware (Debian's raspi-firmware, non-free-firmware) is not on this host: copy bootcode.bin, start.elf and fixup.dat onto the card (see FIRMWARE.txt on it)" });
    await rm(initrd, { force: true });
    await rm(join(r.work, 'parts'), { recursive: true, force: true });
    return { file: out, fileName };
  }

  progress({ step: 'disk', message: `boot disk (${r.firmware === 'both' ? 'BIOS and UEFI' : r.firmware.toUpperCase()})` });
  const raw = join(r.work, 'disk.img');
  await writeBootDisk(raw, { kernel: kernel.file, initrd, cmdline: EXPORT_CMDLINE, firmware: r.firmware }, join(r.work, 'parts'));
  await rm(initrd, { force: true });
  await rm(join(r.work, 'parts'), { recursive: true, force: true });

  const ext = r.format === 'gce' ? 'tar.gz' : r.format;
  const fileName = `${r.image.name}.${ext}`;
  const out = join(r.work, fileName);
  progress({ step: 'pack', message: `packing ${fileName} (${PLATFORMS[r.format].platforms})` });
  await packDisk(raw, r.format, out, { name: r.image.name, memoryMb: m.defaultMemoryMb });
  return { file: out, fileName };
}
