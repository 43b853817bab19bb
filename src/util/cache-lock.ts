import lockfile from 'proper-lockfile';
import type { ProgressFn } from '../model/types.js';

/**
 * Locks a cache folder shared by builds (kernels, Debian packages): at once when free, else it
 * says what it waits for and waits up to 30 minutes (a kernel build takes minutes). A holder that
 * died leaves a lock that goes stale after 30 s.
 */
export async function lockCache(path: string, progress: ProgressFn, step: string, what: string): Promise<() => Promise<void>> {
  const opts = { realpath: false, stale: 30_000, update: 5_000 };
  try {
    return await lockfile.lock(path, { ...opts, retries: 0 });
  } catch {
    progress({ step, message: `waiting for ${what} to finish` });
    return lockfile.lock(path, { ...opts, retries: { retries: 1800, minTimeout: 1000, maxTimeout: 1000 } });
  }
}
