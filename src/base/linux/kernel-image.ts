import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { constants, gunzipSync } from 'node:zlib';
import type { Arch } from '../../model/arch.js';

// Is a file really a Linux kernel of the architecture it claims? Pulled and unpacked images
// name their kernel; this checks the header before any QEMU is given the file.

function head(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** What is wrong with `file` as an `arch` kernel (said after "the kernel"), or undefined. */
export function kernelImageProblem(file: string, arch: Arch): string | undefined {
  const size = statSync(file).size;
  if (arch === 'amd64') {
    const h = head(file, 0x210);
    if (h.length < 0x210 || h.toString('latin1', 0x202, 0x206) !== 'HdrS') return 'is not a Linux bzImage (no boot header)';
    const need = ((h[0x1f1] || 4) + 1) * 512 + h.readUInt32LE(0x1f4) * 16;
    if (size < need) return `is truncated (${size} bytes, its header needs ${need})`;
    return undefined;
  }
  // arm64: a gzipped Image, whose 64-byte header carries the magic "ARM\x64" at offset 56. Only
  // the start is inflated (a sync flush of the first 4 KiB, which deflate's 1:1032 ratio bounds
  // at about 4 MiB of output), never the whole of an untrusted file.
  const h = head(file, 4096);
  if (h.length < 18 || h[0] !== 0x1f || h[1] !== 0x8b) return 'is not a gzipped arm64 Linux Image';
  let start: Buffer;
  try {
    start = gunzipSync(h, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: 8 << 20 });
  } catch {
    return 'is not a gzipped arm64 Linux Image (it does not inflate)';
  }
  if (start.length < 64 || start.readUInt32LE(56) !== 0x644d5241) return 'is not an arm64 Linux Image (no "ARM\\x64" header)';
  return undefined;
}
