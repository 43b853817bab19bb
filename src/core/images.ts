import { existsSync } from 'node:fs';
import { link, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { compilerFor, compilersFor, detectCompiler } from '../compilers/index.js';
import type { Compiler } from '../compilers/types.js';
import { ensureKernel, kernelFragments } from '../base/linux/kernel.js';
import { defaultArch, machineArch, parseArch, parsePlatform, type Arch } from '../model/arch.js';
import { ensureGuestInit } from '../base/linux/init.js';
import { rootBytes, writeInitramfs } from '../base/linux/rootfs.js';
import { writeErofs } from '../base/linux/erofs.js';
import { compressInitramfs } from '../base/linux/compress.js';
import type { Provider } from '../providers/types.js';
import type { Store } from '../store/db.js';
import { alreadyExists, conflict, failedPrecondition, invalid } from '../model/errors.js';
import { checkMountPoint } from './volumes.js';
import { checkName, newId, resolveRef } from './ids.js';
import { unpack } from './tarball.js';
import { containedIn, hostSystemFile, insideDir, leavesUpload, SYSTEM_DIRS, whereIs } from '../util/safe-path.js';
import { readAppManifest, type AppManifest } from '../compilers/app-manifest.js';
import type { ImageSourceSpec, RootEntry } from '../compilers/types.js';
import { ociImageCompiler } from '../compilers/oci-image.js';
import { parseSource } from '../hub/image-source.js';
import type { UnikPaths } from '../model/paths.js';
import type { ImageManifest, ImageRecord, ProgressFn } from '../model/types.js';
import { parseKeep, parseProbe, probeText, profileImage, slimEntries, type Probe, type SlimRequest, type SlimResult } from './slim.js';
import { EventBus, seconds } from './events.js';

/**
 * Roots whose files pass this many bytes go on a read-only disk. An initramfs is in RAM twice
 * while it unpacks and its files stay there; a disk's pages are read when touched. Measured
 * (`npm run bench:memory`, docs/guest-contract.md): each MiB of initramfs root adds about 2 MiB
 * to the memory floor (node-http 100 MiB of files: 256 MB floor, 40 MB on a disk; python-http
 * and java-http 35 MiB: 104 and 112 MB, 40 and 48 MB on a disk). But a root-disk image cannot
 * yet be exported, pushed to a hub, or run by libvirt or unik-runc, so by default a disk is
 * used only where an initramfs stops being practical: past 128 MiB a VM would need some 300 MB
 * just to unpack its root (container images of hundreds of MB); smaller roots ask with
 * unik.yaml `rootDisk: true`. Lower it once the hub and export carry the disk.
 */
export const ROOT_DISK_ABOVE = Number(process.env.UNIK_ROOT_DISK_ABOVE) || 128 * 1024 * 1024;

export interface BuildRequest {
  name: string;
  /** the uploaded .tar(.gz) of the app's sources (or, with fromImage docker-archive/oci, the image); the build takes ownership and deletes it */
  tarball?: string;
  /** a container image to build from (the oci-image compiler): REGISTRY/REPO[:TAG], or "docker-archive[::REF]" / "oci[::TAG]" for the upload */
  fromImage?: string;
  /** for a registry: credentials (never stored), and plain HTTP to a registry not on this machine */
  registryCreds?: { username: string; password: string };
  insecure?: boolean;
  base?: string;
  language?: string;
  provider?: string;
  /** amd64 or arm64 (or their uname names); default: the daemon host's */
  arch?: string;
  /** the same as Docker says it (linux/arm64); must agree with arch when both are given */
  platform?: string;
  /** build-time args: a string split on spaces (2016), or an array */
  args?: string | string[];
  mountPoints?: string[];
  force?: boolean;
  /** only with fromImage: keep just the files the app opens while a probe exercises it (src/core/slim.ts) */
  slim?: SlimRequest;
}

/** A build whose inputs were checked; run() does the long part (compile, kernel, write). */
export interface PreparedBuild {
  name: string;
  compiler: Compiler;
  run(progress: ProgressFn): Promise<ImageRecord>;
  /** releases what prepare() took, when run() is never called */
  abandon(): Promise<void>;
}

export class ImageService {
  /** names being built right now: a second build of the same name is refused */
  private readonly building = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly paths: UnikPaths,
    private readonly providers: Map<string, Provider>,
    private readonly bus: EventBus = new EventBus(),
  ) {}

  list(): ImageRecord[] {
    return this.store.listImages();
  }

  /** Names by id: what a list of instances shows of their images. */
  names(): Map<string, string> {
    return this.store.imageNames();
  }

  get(ref: string): ImageRecord {
    return resolveRef('image', ref, this.store.listImages());
  }

  /** Validates everything that can be validated before the slow work, so errors come first. */
  async prepare(req: BuildRequest): Promise<PreparedBuild> {
    const work = join(this.paths.tmp, `build-${newId().slice(0, 16)}`);
    let reserved = false;
    try {
      checkName('image', req.name);
      const base = req.base || 'linux';
      if (base !== 'linux') throw invalid('UNKNOWN_BASE', `unknown base ${JSON.stringify(base)}`, 'available bases: linux');
      const providerName = req.provider || 'qemu';
      const provider = this.providers.get(providerName);
      if (!provider)
        throw invalid('UNKNOWN_PROVIDER', `unknown provider ${JSON.stringify(providerName)}`, `available providers: ${[...this.providers.keys()].join(', ')}`);
      const arch = requestedArch(req);
      if (!provider.arches.includes(arch))
        throw invalid('ARCH_NOT_SUPPORTED', `the ${providerName} provider does not run ${arch} images`, `it runs ${provider.arches.join(', ')}; for ${arch} use the qemu provider`);
      for (const mp of req.mountPoints ?? []) checkMountPoint(mp);
      const existing = this.store.listImages().find((i) => i.name === req.name);
      if (existing && !req.force)
        throw alreadyExists('IMAGE_EXISTS', `an image named ${req.name} already exists`, 'pick another name, or replace it with --force');
      if (existing && this.store.listInstances().some((i) => i.imageId === existing.id))
        throw failedPrecondition('IMAGE_IN_USE', `image ${req.name} has instances; it cannot be replaced`, 'delete its instances first (unik ps, unik rm)');
      if (this.building.has(req.name)) throw conflict('BUILD_IN_PROGRESS', `image ${req.name} is being built right now`);
      const image = req.fromImage ? imageSpec(req) : undefined;
      if (req.slim && !image) throw invalid('SLIM_NEEDS_IMAGE', '--slim is for builds from a container image', 'use unik push NAME --from-image REF --slim');
      // the profiling boot needs a VM this host runs with a forwarded port: the QEMU provider's
      if (req.slim && providerName !== 'qemu') throw invalid('SLIM_NOT_SUPPORTED', `--slim builds for the qemu provider only, not ${providerName}`, 'build with --slim for qemu');
      const slim = req.slim ? { probe: req.slim.probe ? parseProbe(req.slim.probe) : undefined, keep: parseKeep(req.slim.keep ?? []) } : undefined;
      const compiler0 = image ? ociImageCompiler : req.language ? compilerFor(req.language) : undefined;
      if (!image && !req.tarball) throw invalid('NO_TARFILE', 'a build needs the app as an upload, or an image to build from', 'send a .tar.gz in the form field "tarfile", or fromImage=REF');
      this.building.add(req.name);
      reserved = true;

      const src = join(work, 'src');
      if (image && !req.tarball) await mkdir(src, { recursive: true });
      else await unpack(req.tarball!, src);
      if (image?.uploaded !== undefined) image.uploaded = src;
      const sourceDir = image ? src : await unwrapSingleDir(src, compiler0);
      // unik.yaml says what flags would; a flag given wins over it (an image has none)
      const app = image ? {} : await readAppManifest(sourceDir);
      const compiler = compiler0 ?? (app.language ? compilerFor(app.language) : await detectCompiler(sourceDir));
      if (!compiler.arches.includes(arch))
        throw invalid('ARCH_NOT_SUPPORTED', `${compiler.language} images cannot be built for ${arch} yet`, `languages that build for ${arch}: ${compilersFor(arch).join(', ')}`);
      const flagArgs = Array.isArray(req.args) ? req.args : (req.args ?? '').split(' ').filter(Boolean);
      const args = flagArgs.length ? flagArgs : app.args ?? [];
      const mountPoints = [...new Set(req.mountPoints?.length ? req.mountPoints : app.mountpoints ?? [])];
      for (const mp of mountPoints) checkMountPoint(mp);
      const manifest = { ...app, args, mountpoints: mountPoints };

      const release = async () => {
        this.building.delete(req.name);
        await rm(work, { recursive: true, force: true });
        if (req.tarball) await rm(req.tarball, { force: true });
      };
      return {
        name: req.name,
        compiler,
        abandon: release,
        run: async (progress) => {
          try {
            const began = Date.now();
            const img = await this.build(req.name, providerName, arch, compiler, sourceDir, work, manifest, !!req.force, progress, image, slim);
            this.bus.emit({ type: 'image', action: 'build', id: img.id, attributes: { name: img.name, language: compiler.language, arch, provider: providerName, buildDuration: seconds(Date.now() - began) } });
            return img;
          } finally {
            await release();
          }
        },
      };
    } catch (e) {
      if (reserved) this.building.delete(req.name);
      await rm(work, { recursive: true, force: true });
      if (req.tarball) await rm(req.tarball, { force: true });
      throw e;
    }
  }

  private async build(name: string, provider: string, arch: Arch, compiler: Compiler, sourceDir: string, work: string, appManifest: AppManifest, force: boolean, progress: ProgressFn, image?: ImageSourceSpec, slimAsked?: { probe: Probe | undefined; keep: string[] }): Promise<ImageRecord> {
    const args = appManifest.args ?? [];
    const out = join(work, 'out');
    await mkdir(out, { recursive: true });
    await mkdir(this.paths.cache, { recursive: true });
    const app = await compiler.compile({ sourceDir, workDir: out, buildDir: work, cacheDir: this.paths.cache, args, arch, manifest: appManifest, progress, ...(image ? { image } : {}) });
    // flags and unik.yaml win; else what the app says of itself (a container image's Volumes)
    const mountPoints = appManifest.mountpoints?.length ? appManifest.mountpoints : ownMountPoints(app.mountPoints ?? [], progress);
    // an image's own Volumes, as Docker treats them: a volume may be given, else the path stays on the overlay
    const mountPointsOptional = !appManifest.mountpoints?.length && mountPoints.length > 0;
    const extra = await extraFiles(sourceDir, appManifest.files ?? []);
    let entries = [...app.entries, ...extra];
    // unik.yaml says first, then the compiler; else a root too big to unpack cheaply in RAM goes on a disk
    // (by size on amd64 only, for now: arm64 root disks are built when asked for, but not proven here)
    const onDisk = appManifest.rootDisk ?? app.rootDisk ?? (arch === 'amd64' && (await rootBytes(entries)) > ROOT_DISK_ABOVE);
    // the kernel follows what the image needs: block devices and filesystems only with volumes
    // (a root-disk kernel can always mount volumes: one kernel for every container image, Volumes or not)
    const fragments = kernelFragments(arch, [...app.kernelFragments, ...(onDisk ? ['rootdisk'] : []), ...(onDisk || mountPoints.length ? ['block', 'ext4', 'fat'] : []), ...(this.providers.get(provider)?.kernelFragments ?? [])]);
    const kernel = await ensureKernel(this.paths.kernels, fragments, progress, arch);
    progress({ step: 'init', message: 'guest init' });
    const init = await ensureGuestInit(this.paths.cache, arch);

    const user = appManifest.user ?? app.user;
    const stopSignal = appManifest.stopSignal ?? app.stopSignal;
    /** Writes an image folder (kernel, root, manifest) for these files; returns its record. */
    const writeImage = async (id: string, stage: string, files: typeof entries, slim?: SlimResult): Promise<ImageRecord> => {
      await mkdir(stage, { recursive: true });
      // files may come from this build's folder, unik's caches (guest init, Java runtimes) and the host's system dirs
      const allowedDirs = [work, this.paths.cache];
      let rootDisk: ImageManifest['rootDisk'];
      if (onDisk) {
        progress({ step: 'root', message: 'writing the image root (read-only erofs disk)' });
        await rm(join(work, 'erofs-stage'), { recursive: true, force: true });
        const sizeBytes = await writeErofs(join(stage, 'root.erofs'), files, { stageDir: join(work, 'erofs-stage'), allowedDirs });
        rootDisk = { file: 'root.erofs', fsType: 'erofs', sizeBytes };
      } else {
        progress({ step: 'root', message: 'writing the image root (initramfs)' });
      }
      await writeInitramfs(join(stage, 'root.cpio'), init, onDisk ? [] : files, allowedDirs, onDisk ? 'erofs' : undefined);
      const rootSize = await compressInitramfs(join(stage, 'root.cpio'), this.paths.cache);
      // a hard link shares the cached kernel's bytes; copy when the cache is on another disk
      await link(kernel.file, join(stage, 'kernel')).catch(() => copyFile(kernel.file, join(stage, 'kernel')));
      const manifest: ImageManifest = {
        schemaVersion: 1,
        id,
        name,
        created: new Date().toISOString(),
        arch: machineArch(arch),
        base: 'linux',
        language: compiler.language,
        compiler: `linux-${compiler.language}-${provider}`,
        provider,
        kernel: { file: 'kernel', configHash: kernel.configHash, fragments: kernel.fragments, sizeBytes: kernel.sizeBytes },
        root: { kind: 'initramfs', file: 'root.cpio', sizeBytes: rootSize },
        argv: app.argv,
        cwd: app.cwd,
        env: { ...app.env, ...(appManifest.env ?? {}) },
        mountPoints,
        ...(mountPointsOptional ? { mountPointsOptional } : {}),
        defaultMemoryMb: appManifest.memory ?? app.defaultMemoryMb,
        ports: appManifest.ports ?? app.ports ?? [],
        ...(user ? { user } : {}),
        ...(stopSignal ? { stopSignal } : {}),
        ...(rootDisk ? { rootDisk } : {}),
        ...(app.source ? { source: app.source } : {}),
        ...(app.sourceDigest ? { sourceDigest: app.sourceDigest } : {}),
        ...(slim ? { slim: { probe: slim.probe, keptFiles: slim.keptFiles, totalFiles: slim.totalFiles, keptBytes: slim.keptBytes, totalBytes: slim.totalBytes } } : {}),
      };
      await writeFile(join(stage, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      return { id, name, provider, sizeBytes: kernel.sizeBytes + rootSize + (rootDisk?.sizeBytes ?? 0), created: manifest.created, manifest };
    };

    let slim: SlimResult | undefined;
    if (slimAsked) {
      // the full image, booted once without a record: its folder is a stage the start-up sweep removes
      const full = `.tmp-${newId()}`;
      try {
        const record = await writeImage(full, join(this.paths.images, full), entries);
        const probe = slimAsked.probe ?? (record.manifest.ports?.length ? parseProbe(`tcp://:${record.manifest.ports[0]}`) : undefined);
        const opened = await profileImage(this.providers.get(provider)!, record, probe, progress);
        slim = { ...(await slimEntries(entries, opened, slimAsked.keep, app.argv[0]!)), probe: probe ? probeText(probe) : 'start' };
        const mb = (n: number) => (n / 1e6).toFixed(1);
        progress({ step: 'slim', message: `keeping ${slim.keptFiles} of ${slim.totalFiles} files (${mb(slim.keptBytes)} of ${mb(slim.totalBytes)} MB): the ${opened.size} opened, /etc, the program${slimAsked.keep.length ? ', --keep' : ''}; every directory and link` });
        entries = slim.entries;
      } finally {
        await rm(join(this.paths.images, full), { recursive: true, force: true });
      }
    }

    const id = newId();
    const stage = join(this.paths.images, `.tmp-${id}`);
    try {
      const record = await writeImage(id, stage, entries, slim);
      progress({ step: 'store', message: `storing image ${name}` });
      await this.commit(stage, record, force);
      return record;
    } finally {
      await rm(stage, { recursive: true, force: true });
    }
  }

  /**
   * Moves a finished image folder into place and records it, in that order: a crash between the
   * two leaves a folder with no record, which sweep() removes. With force an image of the same
   * name (and no instances) is replaced in the same transaction.
   */
  async commit(stage: string, record: ImageRecord, force: boolean): Promise<void> {
    await rename(stage, join(this.paths.images, record.id));
    let replaced: ImageRecord | undefined;
    try {
      this.store.tx(() => {
        replaced = this.store.listImages().find((i) => i.name === record.name);
        if (replaced && !force) throw alreadyExists('IMAGE_EXISTS', `an image named ${record.name} already exists`, 'pick another name, or replace it with --force');
        if (replaced && this.store.listInstances().some((i) => i.imageId === replaced!.id))
          throw failedPrecondition('IMAGE_IN_USE', `image ${record.name} has instances; it cannot be replaced`, 'delete its instances first (unik ps, unik rm)');
        if (replaced) this.store.deleteImage(replaced.id);
        this.store.insertImage(record);
      });
    } catch (e) {
      await rm(join(this.paths.images, record.id), { recursive: true, force: true });
      throw e;
    }
    if (replaced) await rm(join(this.paths.images, replaced.id), { recursive: true, force: true });
    // in the background: e.g. the QEMU provider boots the image once for its boot snapshot
    this.providers.get(record.provider)?.prepare?.(record);
  }

  /** Checks a name can take a new image (before slow work such as a pull). */
  checkNameFree(name: string, force: boolean): void {
    checkName('image', name);
    const existing = this.store.listImages().find((i) => i.name === name);
    if (existing && !force) throw alreadyExists('IMAGE_EXISTS', `an image named ${name} already exists`, 'pick another name, or replace it with --force');
    // known before a download, not after it (commit would refuse then)
    if (existing && this.store.listInstances().some((i) => i.imageId === existing.id))
      throw failedPrecondition('IMAGE_IN_USE', `image ${name} has instances; it cannot be replaced`, 'delete its instances first (unik ps, unik rm), or pull under another name');
  }

  dir(img: { id: string }): string {
    return join(this.paths.images, img.id);
  }

  /** Deletes an image; with force, its instances go first (through onDeleteInstances). */
  async delete(ref: string, force: boolean, deleteInstances: (imageId: string) => Promise<void>): Promise<ImageRecord> {
    const img = this.get(ref);
    const users = this.store.listInstances().filter((i) => i.imageId === img.id);
    if (users.length && !force)
      throw failedPrecondition('IMAGE_IN_USE', `image ${img.name} is used by instance(s) ${users.map((u) => u.name).join(', ')}`, 'delete them first, or use --force to delete them with the image');
    if (users.length) await deleteInstances(img.id);
    this.store.deleteImage(img.id);
    await rm(join(this.paths.images, img.id), { recursive: true, force: true });
    this.bus.emit({ type: 'image', action: 'delete', id: img.id, attributes: { name: img.name } });
    return img;
  }

  /** Removes image folders with no record (a build or delete cut short by a crash). */
  async sweep(): Promise<void> {
    if (!existsSync(this.paths.images)) return;
    const known = new Set(this.store.listImages().map((i) => i.id));
    for (const entry of await readdir(this.paths.images)) if (!known.has(entry)) await rm(join(this.paths.images, entry), { recursive: true, force: true });
    // tmp/ is emptied by the start-up sweep (core/sweep.ts), before this
  }
}

/**
 * What to import for a fromImage build. An archive or layout comes as the upload: the daemon
 * never reads a path of its host that a client names (the CLI uploads the file or folder).
 */
function imageSpec(req: BuildRequest): ImageSourceSpec {
  const s = parseSource(req.fromImage!);
  if (s.kind === 'registry') {
    if (req.tarball) throw invalid('BAD_IMAGE_SOURCE', `fromImage ${s.text} is a registry reference; the upload is not used with it`, 'send no tarfile, or fromImage=docker-archive / fromImage=oci for an uploaded image');
    return { source: s.text, ...(req.registryCreds ? { creds: req.registryCreds } : {}), ...(req.insecure ? { insecure: true } : {}) };
  }
  if (s.path) throw invalid('HOST_PATH_NOT_READ', `the daemon does not read ${s.kind}:${s.path.slice(0, 200)} from its own disk for a client`, `send the image as the upload with fromImage=${s.kind} (unik push NAME --from-image ${s.kind}:PATH does that)`);
  if (!req.tarball) throw invalid('NO_TARFILE', `fromImage=${s.kind} takes the image as the upload`, `send the ${s.kind === 'oci' ? 'layout folder as a .tar.gz' : 'archive'} in the form field "tarfile"`);
  return { source: `${s.kind}${s.tag ? `::${s.tag}` : ''}`, uploaded: '' };
}

/** An image's own mount points (Volumes): the ones unik cannot mount (system paths) are left out, with a note. */
function ownMountPoints(mps: string[], progress: ProgressFn): string[] {
  return mps.filter((mp) => {
    try {
      checkMountPoint(mp);
      return true;
    } catch (e) {
      progress({ step: 'config', message: `the image's volume ${mp} is not a mount point here: ${(e as Error).message}` });
      return false;
    }
  });
}

/** Images are built for the daemon host's architecture unless asked otherwise (amd64 on hosts unik does not know). */
function requestedArch(req: Pick<BuildRequest, 'arch' | 'platform'>): Arch {
  const byArch = req.arch ? parseArch(req.arch) : undefined;
  const byPlatform = req.platform ? parsePlatform(req.platform) : undefined;
  if (byArch && byPlatform && byArch !== byPlatform) throw invalid('ARCH_CONFLICT', `arch ${byArch} and platform ${JSON.stringify(req.platform!.slice(0, 64))} disagree`, 'give one of them');
  return byArch ?? byPlatform ?? defaultArch();
}

/** `tar czf app.tgz myapp/` wraps everything in one folder: look inside it. */
async function unwrapSingleDir(dir: string, compiler?: Compiler): Promise<string> {
  const list = await readdir(dir, { withFileTypes: true });
  const only = list.length === 1 && list[0]!.isDirectory() ? join(dir, list[0]!.name) : undefined;
  if (!only) return dir;
  if (compiler && (await compiler.detect(dir))) return dir;
  return only;
}

/**
 * unik.yaml `files:`, from the upload (relative) or from the host's system directories
 * (SYSTEM_DIRS, never /etc or /home). Both are judged where they really lead: `..` and
 * symlinks resolved first.
 */
async function extraFiles(sourceDir: string, files: { from: string; to: string }[]): Promise<RootEntry[]> {
  const out: RootEntry[] = [];
  for (const f of files) {
    if (!f.to.startsWith('/') || f.to.split('/').includes('..')) throw invalid('BAD_APP_MANIFEST', `unik.yaml files: "to" must be an absolute path in the image, got ${f.to}`);
    let source: string | undefined;
    if (f.from.startsWith('/')) {
      const notAllowed = () =>
        invalid('FILE_NOT_ALLOWED', `unik.yaml files: ${f.from} is outside the host directories images may take files from (${SYSTEM_DIRS.join(' ')}), or not a file there, once symlinks and ".." are resolved`);
      const lexical = normalize(f.from);
      if (!SYSTEM_DIRS.some((d) => containedIn(d, lexical))) throw notAllowed();
      if ((await whereIs('/', lexical)) === 'missing') throw invalid('FILE_NOT_FOUND', `unik.yaml files: ${f.from} does not exist`);
      source = await hostSystemFile(lexical);
      if (!source) throw notAllowed();
    } else {
      if ((await whereIs(sourceDir, f.from)) === 'outside') throw leavesUpload(f.from, 'unik.yaml files:');
      source = await insideDir(sourceDir, f.from);
      if (source && (await stat(source)).isDirectory()) throw invalid('FILE_NOT_ALLOWED', `unik.yaml files: ${f.from} is a directory; list its files`);
    }
    if (!source) throw invalid('FILE_NOT_FOUND', `unik.yaml files: ${f.from} does not exist`);
    const st = await stat(source);
    if (!st.isFile()) throw invalid('FILE_NOT_ALLOWED', `unik.yaml files: ${f.from} is not a regular file`);
    out.push({ kind: 'file', path: f.to, source, mode: st.mode & 0o777 });
  }
  return out;
}
