// The unik image inside a bundle's rootfs (the hub's OCI layout, unpacked by containerd):
// is there one, and is it whole and bootable on this host?

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import type { ImageManifest } from '../model/types.js';
import { LAYOUT } from '../hub/mediatypes.js';
import { archOf, hostArch, type Arch } from '../model/arch.js';
import { kernelImageProblem } from '../base/linux/kernel-image.js';
import { MAX_MANIFEST_BYTES, ManifestError, checkManifest } from './manifest-check.js';

export class ImageError extends Error {}

export interface BundleImage {
  manifest: ImageManifest;
  arch: Arch;
  manifestFile: string;
  kernel: string;
  root: string;
}

/** Is this rootfs a unik image? Any of its marker files says so (then the rest must be there). */
export function isUnikRootfs(rootfs: string): boolean {
  return [LAYOUT.manifest, LAYOUT.kernel, LAYOUT.urunc].some((f) => existsSync(join(rootfs, f)));
}


const EMULATE_ENV = 'UNIK_RUNC_EMULATE';

/**
 * The architectures this node runs: its own (with KVM when it works) and those named in
 * UNIK_RUNC_EMULATE (comma-separated, set in containerd's environment), always under TCG.
 */
export function runnableArches(env: NodeJS.ProcessEnv = process.env): Arch[] {
  const own = hostArch();
  const out = new Set<Arch>(own ? [own] : []);
  for (const word of (env[EMULATE_ENV] ?? '').split(',').map((w) => w.trim()).filter(Boolean)) {
    const a = archOf(word.toLowerCase());
    if (!a) throw new ImageError(`${EMULATE_ENV}=${JSON.stringify(word.slice(0, 32))} names no architecture unik runs (amd64, arm64)`);
    out.add(a);
  }
  return [...out];
}

/** Reads and checks the image: manifest, architecture, kernel and initramfs, before any VM starts. */
export function loadBundleImage(rootfs: string, runnable: Arch[] = runnableArches()): BundleImage {
  const mfile = imageFile(rootfs, LAYOUT.manifest, `the image is incomplete: /${LAYOUT.manifest} is missing from the container's rootfs (${rootfs}); re-push it with \`unik hub push\``);
  const msize = statSync(mfile).size;
  if (msize > MAX_MANIFEST_BYTES) throw new ImageError(`the image is corrupt: /${LAYOUT.manifest} is ${msize} bytes, more than the ${MAX_MANIFEST_BYTES} a manifest may have`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(mfile, 'utf8'));
  } catch (e) {
    throw new ImageError(`the image is corrupt: /${LAYOUT.manifest} is not valid JSON (${(e as Error).message})`);
  }
  let manifest: ImageManifest;
  try {
    manifest = checkManifest(raw);
  } catch (e) {
    if (e instanceof ManifestError) throw new ImageError(e.message);
    throw e;
  }
  const arch = archOf(String(manifest.arch));
  const host = hostArch() ?? process.arch;
  if (!arch || !runnable.includes(arch)) {
    const built = `${String(manifest.arch).slice(0, 32)}${arch ? ` (${arch})` : ''}`;
    const emulated = runnable.filter((a) => a !== host);
    throw new ImageError(`the unikernel is built for ${built}, but this host runs ${host}${emulated.length ? ` and emulates ${emulated.join(', ')}` : ''}: build it for ${host} or schedule it on an ${arch ?? 'other'} node${arch ? `, or let this node emulate it (${EMULATE_ENV}=${arch} in containerd's environment; TCG, several times slower)` : ''}`);
  }

  const kernel = imageFile(rootfs, LAYOUT.kernel, `the image is incomplete: the kernel /${LAYOUT.kernel} is missing from the container's rootfs`);
  const root = imageFile(rootfs, LAYOUT.root, `the image is incomplete: the initramfs /${LAYOUT.root} is missing from the container's rootfs`);
  checkKernel(kernel, manifest.kernel?.sizeBytes, arch);
  checkInitramfs(root, manifest.root?.sizeBytes);
  return { manifest, arch, manifestFile: mfile, kernel, root };
}

/**
 * One of the image's files, canonicalised then checked: a regular file inside the rootfs. A
 * symlink in a pulled layer must not make unik-runc (root) read a host file into a guest.
 */
function imageFile(rootfs: string, rel: string, missing: string): string {
  let real: string;
  let base: string;
  try {
    base = realpathSync(rootfs);
    real = realpathSync(join(rootfs, rel));
  } catch {
    throw new ImageError(missing);
  }
  const inside = relative(base, real);
  if (inside === '' || isAbsolute(inside) || inside.split(sep)[0] === '..') throw new ImageError(`the image is hostile: /${rel} leads outside the container's rootfs`);
  if (!statSync(real).isFile()) throw new ImageError(`the image is corrupt: /${rel} is not a regular file`);
  return real;
}

/** A bzImage: the "HdrS" boot header, and at least as many bytes as its header declares. */
export function checkKernel(file: string, expectSize?: number, arch: Arch = 'amd64'): void {
  const size = statSync(file).size;
  if (expectSize && size !== expectSize) throw new ImageError(`the image is corrupt: the kernel /${LAYOUT.kernel} is ${size} bytes, its manifest says ${expectSize}`);
  const problem = kernelImageProblem(file, arch);
  if (problem) throw new ImageError(`the image is corrupt: the kernel /${LAYOUT.kernel} ${problem}`);
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** A newc cpio archive, plain or zstd-compressed (as unik builds them), whole. */
export function checkInitramfs(file: string, expectSize?: number): void {
  const size = statSync(file).size;
  if (expectSize && size !== expectSize) throw new ImageError(`the image is corrupt: the initramfs /${LAYOUT.root} is ${size} bytes, its manifest says ${expectSize}`);
  const head = readHead(file, 6);
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) {
    // zstd checks the frames and their checksums in a few milliseconds
    const r = spawnSync('zstd', ['-t', '-q', file], { encoding: 'utf8' });
    if (r.error) throw new ImageError(`cannot check the zstd initramfs /${LAYOUT.root}: ${r.error.message} (apt-get install zstd)`);
    if (r.status !== 0) throw new ImageError(`the image is corrupt: the zstd initramfs /${LAYOUT.root} is truncated or damaged (${r.stderr.trim().split('\n').pop()})`);
    return;
  }
  const magic = head.toString('latin1');
  if (magic !== '070701' && magic !== '070702') throw new ImageError(`the image is corrupt: /${LAYOUT.root} is not a cpio (newc) archive, plain or zstd-compressed`);
  const tail = readAt(file, Math.max(0, size - 1024), Math.min(size, 1024));
  if (!tail.includes('TRAILER!!!')) throw new ImageError(`the image is corrupt: the initramfs /${LAYOUT.root} is truncated (no cpio trailer)`);
}

function readHead(file: string, n: number): Buffer {
  return readAt(file, 0, n);
}

function readAt(file: string, pos: number, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, pos);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
