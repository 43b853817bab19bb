import type { UnikPaths } from '../model/paths.js';
import { LibvirtProvider } from './libvirt/provider.js';
import { QemuProvider } from './qemu/provider.js';
import type { Provider } from './types.js';

export interface ProviderOptions {
  /** libvirt's connection URI (default: LIBVIRT_DEFAULT_URI, else qemu:///system) */
  libvirtUri?: string;
}

/** The provider registry: adding an infrastructure is adding an entry here, nothing else. */
export function createProviders(paths: UnikPaths, log: (msg: string) => void, opts: ProviderOptions = {}): Provider[] {
  return [new QemuProvider(paths, log), new LibvirtProvider(paths, log, opts.libvirtUri || undefined)];
}
