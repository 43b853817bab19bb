import { defaultArch, type Arch } from '../model/arch.js';

/** For languages whose runtime or program is the daemon host's own: its architecture, only. */
export const HOST_ONLY: readonly Arch[] = [defaultArch()];
