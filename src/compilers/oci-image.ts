import { constants, existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { parseContainerConfig, type ContainerConfig } from '../hub/image-config.js';
import { DockerArchiveSource, importLimits, LayoutSource, parseSource, RegistrySource, type ImageSource, type ImportLimits } from '../hub/image-source.js';
import { badContainerImage, ImageTree } from '../hub/image-tree.js';
import { trustedRealmsFromEnv } from '../hub/realm.js';
import { RegistryClient } from '../hub/registry.js';
import { ARCHES, archOf, type Arch } from '../model/arch.js';
import { failedPrecondition, invalid } from '../model/errors.js';
import type { ProgressFn } from '../model/types.js';
import type { AppRoot, Compiler, ImageSourceSpec } from './types.js';

// An ordinary container image (any OCI registry, a `docker save` / `podman save` archive, an
// OCI image layout) becomes an app root: its layers applied in order into a fresh tree
// (src/hub/image-tree.ts), its config mapped to argv, env, cwd, user, ports, stop signal and
// mount points. The whole root goes in, on a read-only disk (rootDisk).

/** Docker's PATH when an image sets none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_ID = 4294967294;

export interface ImportOptions {
  /** scratch space; the tree is made in workDir/root and must outlive the build's use of the entries */
  workDir: string;
  arch: Arch;
  /** build-time args: they replace the image's Cmd */
  args: string[];
  progress: ProgressFn;
  limits?: ImportLimits;
  /** the archive or layout was uploaded and unpacked here by the caller */
  uploaded?: string;
}

export const ociImageCompiler: Compiler = {
  language: 'oci-image',
  looksFor: 'a container image (unik push NAME --from-image REF)',
  // the root goes on an erofs disk
  hostTools: [{ name: 'mkfs.erofs', pkg: 'erofs-utils' }],
  arches: ARCHES,
  description: 'an ordinary container image (registry, docker-archive, OCI layout): its layers as the root, on a read-only disk; argv, env, user and ports from its config',
  detect: async () => false,
  async compile(ctx) {
    if (!ctx.image) throw invalid('NO_IMAGE_SOURCE', 'the oci-image language imports a container image, not an app directory', 'use unik push NAME --from-image REF');
    return importImage(ctx.image, { workDir: ctx.workDir, arch: ctx.arch, args: ctx.args, progress: ctx.progress, ...(ctx.image.uploaded ? { uploaded: ctx.image.uploaded } : {}) });
  },
};

/** The source to read from, set up (an archive on this host is unpacked first, strictly). */
async function openSource(spec: ImageSourceSpec, o: ImportOptions, limits: ImportLimits): Promise<ImageSource> {
  const s = parseSource(spec.source);
  if (s.kind === 'registry') {
    if (o.uploaded) throw invalid('BAD_IMAGE_SOURCE', 'an upload is a docker-archive or an oci layout, not a registry reference', 'send fromImage=docker-archive or fromImage=oci with the upload');
    const client = new RegistryClient(s.ref.registry, spec.creds, !!spec.insecure, trustedRealmsFromEnv());
    return new RegistrySource(s.ref, client, limits);
  }
  const shown = o.uploaded ? `the uploaded ${s.kind}` : `${s.kind}:${s.path}`;
  let root = o.uploaded;
  if (!root && !s.path) throw invalid('BAD_IMAGE_SOURCE', `${s.kind}: names no path`, `use ${s.kind}:PATH`);
  if (!root && s.kind === 'docker-archive') {
    if (!existsSync(s.path)) throw invalid('IMAGE_SOURCE_NOT_FOUND', `${s.path} does not exist`);
    o.progress({ step: 'source', message: `unpacking ${basename(s.path)}` });
    root = join(o.workDir, 'archive');
    // the archive is a tar like any layer: unpacked by the same strict code into a link-free folder
    const { size } = await stat(s.path);
    await new ImageTree(root, { bytesLeft: Math.min(limits.unpackedBytes, 20 * size + (256 << 20)), entriesLeft: 100_000 }).applyLayer(s.path, `the archive ${s.path}`);
  }
  if (s.kind === 'docker-archive') return new DockerArchiveSource(shown, root!, s.tag, limits);
  if (!root) {
    if (!existsSync(s.path)) throw invalid('IMAGE_SOURCE_NOT_FOUND', `${s.path} does not exist`);
    return new LayoutSource(shown, s.path, s.tag, false, limits);
  }
  return new LayoutSource(shown, await layoutRoot(root), s.tag, true, limits);
}

/** `tar czf x.tgz dir/` wraps a layout in one folder: look inside it. */
async function layoutRoot(dir: string): Promise<string> {
  if (existsSync(join(dir, 'oci-layout'))) return dir;
  const list = await readdir(dir, { withFileTypes: true });
  return list.length === 1 && list[0]!.isDirectory() && existsSync(join(dir, list[0]!.name, 'oci-layout')) ? join(dir, list[0]!.name) : dir;
}

/** Imports a container image into workDir/root and describes it as an app root. */
export async function importImage(spec: ImageSourceSpec, o: ImportOptions): Promise<AppRoot> {
  const limits = o.limits ?? importLimits();
  await mkdir(o.workDir, { recursive: true });
  const source = await openSource(spec, o, limits);
  o.progress({ step: 'source', message: `resolving ${source.name} for linux/${o.arch}` });
  const { manifest, digest } = await source.resolve(o.arch, (message) => o.progress({ step: 'source', message }));

  const configFile = await source.blob(manifest.config, join(o.workDir, 'config.json'));
  const config = parseContainerConfig(await readFile(configFile), `the image config of ${source.name}`);
  if (config.os !== 'linux' || archOf(config.architecture) !== o.arch)
    throw failedPrecondition('WRONG_ARCH', `${source.name} is built for ${config.os}/${config.architecture}, not linux/${o.arch}`, archOf(config.architecture) ? `build it with --arch ${archOf(config.architecture)}` : 'unik runs linux/amd64 and linux/arm64 images');
  if (config.diffIds.length !== manifest.layers.length) throw badContainerImage(`the image config of ${source.name}`, `lists ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);

  const total = manifest.layers.reduce((n, l) => n + l.size, 0);
  if (total > limits.downloadBytes) throw badContainerImage(source.name, `its layers add up to ${total} bytes; at most ${limits.downloadBytes} are taken (UNIK_MAX_IMAGE_DOWNLOAD_MB)`, 'IMAGE_TOO_LARGE');
  // a ratio as the hub's pull has: a small gzip bomb cannot fill the disk before the hard cap does
  const tree = new ImageTree(join(o.workDir, 'root'), { bytesLeft: Math.min(limits.unpackedBytes, 20 * total + (256 << 20)), entriesLeft: limits.entries });
  let done = 0;
  for (const [n, layer] of manifest.layers.entries()) {
    const where = `layer ${n + 1}/${manifest.layers.length} (${layer.digest.slice(7, 19)}) of ${source.name}`;
    const copy = join(o.workDir, `layer${n}`);
    let last = -1;
    const file = await source.blob(layer, copy, (b) => {
      const pct = Math.floor(((done + b) / total) * 100);
      if (pct !== last) o.progress({ step: 'pull', message: `layer ${n + 1}/${manifest.layers.length}`, percent: (last = pct) });
    });
    done += layer.size;
    o.progress({ step: 'layers', message: `applying layer ${n + 1}/${manifest.layers.length} (${(layer.size / 1e6).toFixed(1)} MB)` });
    await tree.applyLayer(file, where, config.diffIds[n]);
    if (file === copy) await rm(copy, { force: true });
  }
  const skipped = tree.skippedNote();
  if (skipped) o.progress({ step: 'layers', message: `skipped ${skipped} (the guest has its own /dev)` });
  if (config.portsSkipped.length) o.progress({ step: 'config', message: `not published: ExposedPorts ${config.portsSkipped.join(', ')} (only single tcp ports are)` });

  const env = { ...config.env };
  env.PATH ||= DEFAULT_PATH;
  const cwd = config.workingDir;
  if (tree.resolve(cwd) === undefined) await tree.ensureDir(cwd, `the WorkingDir of ${source.name}`);
  const argv = [...config.entrypoint, ...(o.args.length ? o.args : config.cmd)];
  if (!argv.length || !argv[0]) throw failedPrecondition('NO_COMMAND', `${source.name} names no command (its Entrypoint and Cmd are empty)`, 'give one with --args');
  argv[0] = programPath(tree, argv[0], env.PATH, cwd, source.name);
  const user = config.user ? await resolveUser(tree, config.user, source.name) : undefined;
  return {
    entries: tree.entries(),
    argv,
    cwd,
    env,
    kernelFragments: ['net'],
    defaultMemoryMb: 128,
    rootDisk: true,
    ...(user ? { user } : {}),
    ...(config.stopSignal ? { stopSignal: config.stopSignal } : {}),
    ports: config.ports,
    mountPoints: config.volumes,
    source: source.name,
    sourceDigest: digest,
  };
}

/**
 * The program's path in the guest: init execs it without a PATH search, so a bare name is
 * looked up on the image's PATH now, as runc would at start. Links are not resolved in the
 * result (busybox and friends look at argv[0]).
 */
export function programPath(tree: ImageTree, prog: string, path: string, cwd: string, where: string): string {
  const isProgram = (p: string) => {
    const key = tree.resolve(p);
    const n = key === undefined ? undefined : tree.nodeAt(key);
    return n?.type === 'file' && (n.mode & 0o111) !== 0;
  };
  if (prog.includes('/')) {
    const abs = posix.normalize(prog.startsWith('/') ? prog : posix.join(cwd, prog));
    if (!isProgram(abs)) throw failedPrecondition('NO_PROGRAM', `${where}: its command ${JSON.stringify(prog.slice(0, 200))} is not an executable file of the image`);
    return abs;
  }
  for (const dir of path.split(':')) {
    if (!dir.startsWith('/')) continue;
    const candidate = posix.join(dir, prog);
    if (isProgram(candidate)) return candidate;
  }
  throw failedPrecondition('NO_PROGRAM', `${where}: its command ${JSON.stringify(prog.slice(0, 200))} is on no directory of its PATH (${path.slice(0, 200)})`);
}

/** A small text file of the image, read as the guest would find it (links inside the tree only), at most 4 MiB. */
async function treeText(tree: ImageTree, guestPath: string): Promise<string | undefined> {
  const host = tree.resolveFile(guestPath);
  if (!host) return undefined;
  const fh = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 4 << 20) return undefined;
    return (await fh.readFile()).toString('utf8');
  } finally {
    await fh.close();
  }
}

const numeric = (s: string) => (/^\d{1,10}$/.test(s) && Number(s) <= MAX_ID ? Number(s) : undefined);

/**
 * User ("name", "uid", "name:group", "uid:gid"…) as runc resolves it, against the image's own
 * /etc/passwd and /etc/group: the primary group from passwd unless one is named; the
 * supplementary groups are those that list the user, unless a group is named.
 */
export async function resolveUser(tree: ImageTree, spec: string, where: string): Promise<{ uid: number; gid: number; groups: number[] }> {
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? '' : spec.slice(colon + 1);
  const passwd = ((await treeText(tree, '/etc/passwd')) ?? '').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 4 && numeric(f[2]!) !== undefined && numeric(f[3]!) !== undefined);
  const groups = ((await treeText(tree, '/etc/group')) ?? '').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 3 && numeric(f[2]!) !== undefined);
  const bad = (what: string) => failedPrecondition('UNKNOWN_USER', `${where}: its User ${JSON.stringify(spec.slice(0, 80))}: ${what}`, 'the user must be in the image\'s /etc/passwd (a name), or be numeric');

  let uid = numeric(userPart);
  const byUid = uid !== undefined ? passwd.find((f) => Number(f[2]) === uid) : passwd.find((f) => f[0] === userPart);
  if (uid === undefined) {
    if (!byUid) throw bad(`no user ${JSON.stringify(userPart.slice(0, 64))} in the image's /etc/passwd`);
    uid = Number(byUid[2]);
  }
  let gid = byUid ? Number(byUid[3]) : 0;
  let supplementary: number[] = [];
  if (groupPart) {
    const g = numeric(groupPart);
    if (g !== undefined) gid = g;
    else {
      const hit = groups.find((f) => f[0] === groupPart);
      if (!hit) throw bad(`no group ${JSON.stringify(groupPart.slice(0, 64))} in the image's /etc/group`);
      gid = Number(hit[2]);
    }
  } else if (byUid) {
    const name = byUid[0]!;
    supplementary = groups.filter((f) => (f[3] ?? '').split(',').includes(name)).map((f) => Number(f[2]));
  }
  return { uid, gid, groups: [...new Set([gid, ...supplementary])] };
}

export type { ContainerConfig };
