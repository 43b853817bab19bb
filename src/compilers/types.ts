import type { ProgressFn } from '../model/types.js';
import type { AppManifest } from './app-manifest.js';
import type { Arch } from '../model/arch.js';

/** One thing to put in the image root. Paths are absolute inside the guest. */
export type RootEntry =
  | ({ kind: 'file'; path: string; source: string; mode: number } & Owner)
  | ({ kind: 'data'; path: string; content: string | Buffer; mode: number } & Owner)
  | ({ kind: 'dir'; path: string; mode: number } & Owner)
  | ({ kind: 'symlink'; path: string; target: string } & Owner);

/** A file's owner in the guest (container images have them); absent: root. Kept on root disks; an initramfs makes everything root's. */
export interface Owner {
  uid?: number;
  gid?: number;
}

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
  /** the user the app runs as; absent: root */
  user?: { uid: number; gid: number; groups: number[] };
  /** the signal an orderly stop sends the app ("SIGQUIT"); absent: SIGTERM */
  stopSignal?: string;
  /** true: the root on a read-only disk, whatever its size; false: in the initramfs; absent: by size (images.ts) */
  rootDisk?: boolean;
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
}

export interface Compiler {
  language: string;
  /** what detect() looks for, for the "could not detect the language" error */
  looksFor: string;
  /** host programs it runs, checked when the daemon lists compilers */
  hostTools: string[];
  /** the architectures it builds images for */
  arches: readonly Arch[];
  description: string;
  detect(sourceDir: string): Promise<boolean>;
  compile(ctx: CompileContext): Promise<AppRoot>;
}
