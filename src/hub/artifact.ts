import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar';
import { kernelCmdline } from '../base/linux/cmdline.js';
import { archOf } from '../model/arch.js';
import { failedPrecondition } from '../model/errors.js';
import type { ImageManifest } from '../model/types.js';
import { ANNOTATIONS, LAYOUT, MT, type Descriptor, type OciManifest } from './mediatypes.js';

// A unik image as an OCI image: three gzip'd tar layers (the kernel, the root, the metadata)
// whose files land at /unik/… when a runtime such as containerd unpacks the image, a standard
// image config, and annotations — unik's own and urunc's — on the manifest. Layers are
// reproducible (fixed owners and times), so the same kernel is one blob in every registry.

export interface Blob extends Descriptor {
  file: string;
}

export interface Artifact {
  manifest: OciManifest;
  manifestBytes: Buffer;
  config: Blob;
  layers: Blob[];
}

const EPOCH = new Date(0);

/**
 * The image's OCI blobs, packed once and kept in images/<id>/oci/: images never change, so
 * every later push only uploads (or skips) them.
 */
export async function packedImage(imageDir: string, m: ImageManifest): Promise<Artifact> {
  const dir = join(imageDir, 'oci');
  const index = join(dir, 'artifact.json');
  if (existsSync(index)) {
    const saved = JSON.parse(await readFile(index, 'utf8')) as Omit<Artifact, 'manifestBytes'> & { manifestBytes: string };
    if ([saved.config, ...saved.layers].every((b) => existsSync(b.file))) return { ...saved, manifestBytes: Buffer.from(saved.manifestBytes, 'base64') };
  }
  const work = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const art = await packImage(imageDir, m, work);
    await rm(join(work, 'tree'), { recursive: true, force: true });
    const moved = (b: Blob): Blob => ({ ...b, file: join(dir, basename(b.file)) });
    const final: Artifact = { ...art, config: moved(art.config), layers: art.layers.map(moved) };
    await writeFile(join(work, 'artifact.json'), JSON.stringify({ ...final, manifestBytes: final.manifestBytes.toString('base64') }));
    if (existsSync(dir) && !existsSync(index)) await rm(dir, { recursive: true, force: true }); // an unfinished older pack
    try {
      await rename(work, dir);
    } catch {
      // another push of the same image packed it meanwhile: the same bytes, use theirs
      await rm(work, { recursive: true, force: true });
      return packedImage(imageDir, m);
    }
    return final;
  } catch (e) {
    await rm(work, { recursive: true, force: true });
    throw e;
  }
}

/** Packs an image folder (kernel, root.cpio, manifest.json) into OCI blobs under work/. */
export async function packImage(imageDir: string, m: ImageManifest, work: string): Promise<Artifact> {
  const tree = join(work, 'tree');
  await mkdir(join(tree, 'unik'), { recursive: true });
  await copyFile(join(imageDir, m.kernel.file), join(tree, LAYOUT.kernel));
  await copyFile(join(imageDir, m.root.file), join(tree, LAYOUT.root));
  await copyFile(join(imageDir, 'manifest.json'), join(tree, LAYOUT.manifest));
  const arch = archOf(m.arch);
  if (!arch) throw failedPrecondition('UNSUPPORTED_ARCH', `image ${m.name} is for ${String(m.arch).slice(0, 32)}, which unik does not know`);
  const cmdline = kernelCmdline({ arch, accel: 'kvm' });
  // urunc reads /urunc.json when a runtime drops the annotations (its values are base64)
  const urunc = { [ANNOTATIONS.uruncType]: 'linux', [ANNOTATIONS.uruncHypervisor]: 'qemu', [ANNOTATIONS.uruncBinary]: `/${LAYOUT.kernel}`, [ANNOTATIONS.uruncCmdline]: cmdline, [ANNOTATIONS.uruncInitrd]: `/${LAYOUT.root}` };
  await writeFile(join(tree, LAYOUT.urunc), JSON.stringify(Object.fromEntries(Object.entries(urunc).map(([k, v]) => [k, Buffer.from(v).toString('base64')]))) + '\n');

  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const [n, files] of [[LAYOUT.kernel], [LAYOUT.root], [LAYOUT.manifest, LAYOUT.urunc]].entries()) {
    const { blob, diffId } = await layer(tree, files, join(work, `layer${n}.tar.gz`));
    layers.push({ ...blob, annotations: { [ANNOTATIONS.title]: files[0]! } });
    diffIds.push(diffId);
  }
  const configJson = {
    created: m.created,
    architecture: arch,
    os: 'linux',
    config: { Entrypoint: m.argv, Env: Object.entries(m.env).map(([k, v]) => `${k}=${v}`), WorkingDir: m.cwd, Labels: { [ANNOTATIONS.unikLanguage]: m.language } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [{ created: m.created, created_by: `unik ${m.compiler}` }],
  };
  const config = await blobOf(Buffer.from(JSON.stringify(configJson)), MT.config, join(work, 'config.json'));
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: MT.manifest,
    config: strip(config),
    layers: layers.map(strip),
    annotations: {
      [ANNOTATIONS.created]: m.created,
      [ANNOTATIONS.title]: m.name,
      [ANNOTATIONS.description]: `unikernel: ${m.language} app on a specialised Linux kernel`,
      [ANNOTATIONS.unikLanguage]: m.language,
      [ANNOTATIONS.unikBase]: m.base,
      [ANNOTATIONS.unikCompiler]: m.compiler,
      [ANNOTATIONS.unikKernelConfig]: m.kernel.configHash,
      [ANNOTATIONS.unikMountPoints]: m.mountPoints.join(','),
      ...urunc,
    },
  };
  return { manifest, manifestBytes: Buffer.from(JSON.stringify(manifest)), config, layers };
}

function strip(b: Blob): Descriptor {
  const { file: _file, ...d } = b;
  return d;
}

async function blobOf(bytes: Buffer, mediaType: string, file: string): Promise<Blob> {
  await writeFile(file, bytes);
  return { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length, file };
}

/** A reproducible tar.gz of some files; returns the blob and the digest of the uncompressed tar. */
async function layer(cwd: string, files: string[], out: string): Promise<{ blob: Blob; diffId: string }> {
  const tarHash = createHash('sha256');
  const gzHash = createHash('sha256');
  let size = 0;
  const tap = (h: ReturnType<typeof createHash>, count = false) =>
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        h.update(chunk);
        if (count) size += chunk.length;
        cb(null, chunk);
      },
    });
  const stream = tar.c({ cwd, portable: true, mtime: EPOCH, noDirRecurse: true }, files) as unknown as NodeJS.ReadableStream;
  await pipeline(stream, tap(tarHash), createGzip({ level: 1 }), tap(gzHash, true), createWriteStream(out));
  return { blob: { mediaType: MT.layer, digest: `sha256:${gzHash.digest('hex')}`, size, file: out }, diffId: `sha256:${tarHash.digest('hex')}` };
}
