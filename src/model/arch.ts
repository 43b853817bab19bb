import { invalid } from './errors.js';

// The processor architectures unik builds for and runs. Each world names them its own way:
// OCI, Docker and Go say amd64/arm64 (the API's word), the kernel and `uname -m` say
// x86_64/aarch64 (an image manifest's word, as images made before arm64 already say x86_64).

export const ARCHES = ['amd64', 'arm64'] as const;
export type Arch = (typeof ARCHES)[number];
/** The manifest's spelling: `uname -m`. */
export type MachineArch = 'x86_64' | 'aarch64';

const MACHINE: Record<Arch, MachineArch> = { amd64: 'x86_64', arm64: 'aarch64' };
const ALIASES: Record<string, Arch> = { amd64: 'amd64', x86_64: 'amd64', x64: 'amd64', arm64: 'arm64', aarch64: 'arm64' };

/** The architecture an alias names, or undefined (riscv64, ppc64le…: not built here). */
export function archOf(name: string | undefined): Arch | undefined {
  return name === undefined ? undefined : Object.hasOwn(ALIASES, name) ? ALIASES[name] : undefined;
}

export function machineArch(a: Arch): MachineArch {
  return MACHINE[a];
}

/** The daemon host's own architecture (what runs without emulation). */
export function hostArch(): Arch | undefined {
  return archOf(process.arch);
}

/** The architecture meant when none is named: the host's, or amd64 on a host unik cannot build for. */
export function defaultArch(): Arch {
  return hostArch() ?? 'amd64';
}

/** A user's --arch / platform value, checked: amd64 and arm64 (or their uname names). */
export function parseArch(value: string): Arch {
  const a = archOf(value.trim().toLowerCase());
  if (!a) throw invalid('UNKNOWN_ARCH', `unknown architecture ${JSON.stringify(value.slice(0, 64))}`, `available architectures: ${ARCHES.join(', ')}`);
  return a;
}

/** The variants Docker names that unik's images run on: any amd64 level, ARMv8 */
const VARIANTS: Record<Arch, string[]> = { amd64: ['v1', 'v2', 'v3', 'v4'], arm64: ['v8'] };

/** Docker's and OCI's platform string: "linux/arm64", "linux/arm64/v8", "linux/amd64/v3", or a bare "arm64". */
export function parsePlatform(value: string): Arch {
  const parts = value.trim().toLowerCase().split('/');
  const hint = `e.g. linux/${ARCHES.join(' or linux/')}`;
  if (parts.length > 3) throw invalid('UNKNOWN_PLATFORM', `unknown platform ${JSON.stringify(value.slice(0, 64))}`, hint);
  // "arm64/v8" has no OS: the second part is a variant, not an architecture
  const [os, archName, variant] = parts.length === 1 ? [undefined, parts[0]!, undefined] : archOf(parts[0]) && parts.length === 2 ? [undefined, parts[0]!, parts[1]] : [parts[0], parts[1]!, parts[2]];
  if (os !== undefined && os !== 'linux') throw invalid('UNKNOWN_PLATFORM', `unknown platform ${JSON.stringify(value.slice(0, 64))}: unikernels here are Linux`, hint);
  const arch = parseArch(archName);
  if (variant !== undefined && !VARIANTS[arch].includes(variant)) throw invalid('UNKNOWN_PLATFORM', `unknown platform ${JSON.stringify(value.slice(0, 64))}: no variant ${JSON.stringify(variant.slice(0, 16))} of ${arch}`, hint);
  return arch;
}
