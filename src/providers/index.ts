import type { UnikPaths } from '../model/paths.js';
import { QemuProvider } from './qemu/provider.js';
import type { Provider } from './types.js';

/** The provider registry: adding an infrastructure is adding an entry here, nothing else. */
export function createProviders(paths: UnikPaths, log: (msg: string) => void): Provider[] {
  return [new QemuProvider(paths, log)];
}
