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

/** A user's --arch / platform value, checked: amd64 and arm64 (or their uname names). */
export function parseArch(value: string): Arch {
  const a = archOf(value.trim().toLowerCase());
  if (!a) throw invalid('UNKNOWN_ARCH', `unknown architecture ${JSON.stringify(value.slice(0, 64))}`, `available architectures: ${ARCHES.join(', ')}`);
  return a;
}

/** Docker's and OCI's platform string: "linux/arm64", "linux/arm64/v8", or a bare "arm64". */
export function parsePlatform(value: string): Arch {
  const parts = value.trim().toLowerCase().split('/');
  if (parts.length > 1 && parts[0] !== 'linux') throw invalid('UNKNOWN_PLATFORM', `unknown platform ${JSON.stringify(value.slice(0, 64))}: unikernels here are Linux`, `e.g. linux/${ARCHES.join(' or linux/')}`);
  const arch = parseArch(parts.length > 1 ? parts[1]! : parts[0]!);
  const variant = parts[2];
  if (parts.length > 3 || (variant !== undefined && !(arch === 'arm64' && variant === 'v8')))
    throw invalid('UNKNOWN_PLATFORM', `unknown platform ${JSON.stringify(value.slice(0, 64))}`, `e.g. linux/${ARCHES.join(' or linux/')}`);
  return arch;
}
