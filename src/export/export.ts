// unik export: an image as a bootable disk for a platform. Its kernel is the image's own
// fragments plus what PC-compatible machines need (pc: PCI, ACPI, virtio-pci, NVMe, DHCP; efi)
// and the platform's devices; the root is the image's, with its default config (argv, env) as a
// second archive; a config drive attached at boot overrides that config (no control channel on
// a cloud), and the network comes from DHCP unless the drive gives an address.

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureKernel } from '../base/linux/kernel.js';
import { writeStartInitrd, type BootConfig } from '../base/linux/contract.js';
import type { ImageRecord, ProgressFn } from '../model/types.js';
import { writeBootDisk, type Firmware } from './disk.js';
import { PLATFORMS, packDisk, type ExportFormat } from './formats.js';

/** the command line of an exported kernel: DHCP unless a config drive gives an address */
export const EXPORT_CMDLINE = 'console=ttyS0 panic=-1 quiet ip=dhcp unik.drive';

export function exportFragments(image: ImageRecord, format: ExportFormat): string[] {
  const own = image.manifest.kernel.fragments;
  const want = [...own, 'block', 'fat', 'pc', 'efi', ...PLATFORMS[format].fragments];
  return [...new Set(want)];
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
  await mkdir(r.work, { recursive: true });
  const fragments = exportFragments(r.image, r.format);
  progress({ step: 'kernel', message: `kernel for ${r.format} (${fragments.join(', ')})` });
  const kernel = await ensureKernel(r.kernelsDir, fragments, progress);

  // the image's own config, as a cold boot's: what a config drive does not override
  const config: BootConfig = { argv: m.argv, env: m.env, cwd: m.cwd, hostname: r.image.name, time: Date.now() / 1000 };
  const initrd = join(r.work, 'initrd.img');
  await writeStartInitrd(initrd, join(r.imageDir, m.root.file), config);

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
