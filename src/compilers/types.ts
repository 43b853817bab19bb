import type { HostTool, ProgressFn } from '../model/types.js';
import type { AppManifest } from './app-manifest.js';
import type { Arch } from '../model/arch.js';

/** Owner in the guest (a container image's files); root when absent. */
export interface Owner {
  uid?: number;
  gid?: number;
}

/** One thing to put in the image root. Paths are absolute inside the guest. */
export type RootEntry =
  | ({ kind: 'file'; path: string; source: string; mode: number } & Owner)
  | ({ kind: 'data'; path: string; content: string | Buffer; mode: number } & Owner)
  | ({ kind: 'dir'; path: string; mode: number } & Owner)
  | ({ kind: 'symlink'; path: string; target: string } & Owner);

/** What a compiler makes of an app: its files and how to start it. */
export interface AppRoot {
  entries: RootEntry[];
  /** argv[0] is the program's path in the guest; build-time args follow */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** kernel/<name>.config fragments this app needs, beside "base" */
  kernelFragments: string[];
  defaultMemoryMb: number;
  /** the app runs as this user (from a container image's User) */
  user?: { uid: number; gid: number; groups: number[] };
  /** the signal an orderly stop sends, e.g. "SIGQUIT" */
  stopSignal?: string;
  /** true: put the app root on a read-only disk instead of the initramfs */
  rootDisk?: boolean;
  /** what the app says of itself (a container image's ExposedPorts and Volumes); unik.yaml and flags win */
  ports?: number[];
  mountPoints?: string[];
  /** where it came from (a container image's reference) and that manifest's digest */
  source?: string;
  sourceDigest?: string;
}

export interface CompileContext {
  /** the unpacked upload */
  sourceDir: string;
  /** scratch space for this build; removed afterwards */
  workDir: string;
  /** this build's own folder (holds sourceDir and workDir); removed afterwards */
  buildDir: string;
  /** persistent caches shared between builds (e.g. Go's build cache) */
  cacheDir: string;
  /** build-time arguments, baked into the image */
  args: string[];
  /** the architecture the image is for */
  arch: Arch;
  /** the app's unik.yaml, merged with the build flags */
  manifest: AppManifest;
  progress: ProgressFn;
  /** a container image to import (the oci-image compiler): what and how to reach it */
  image?: ImageSourceSpec;
}

/** A container image to read: a registry reference, or an archive or OCI layout on the daemon host. */
export interface ImageSourceSpec {
  /** REGISTRY/REPO[:TAG][@DIGEST], docker-archive:PATH[:REF], oci:PATH[:TAG] */
  source: string;
  creds?: { username: string; password: string };
  /** plain HTTP to a registry that is not on this machine */
  insecure?: boolean;
  /** the archive or layout came as the upload, unpacked here (source is then "docker-archive[:REF]" or "oci[:TAG]") */
  uploaded?: string;
}

export interface Compiler {
  language: string;
  /** what detect() looks for, for the "could not detect the language" error */
  looksFor: string;
  /** host programs it runs, with their Debian packages (`unik doctor` checks them) */
  hostTools: HostTool[];
  /** the architectures it builds images for */
  arches: readonly Arch[];
  description: string;
  detect(sourceDir: string): Promise<boolean>;
  compile(ctx: CompileContext): Promise<AppRoot>;
}
