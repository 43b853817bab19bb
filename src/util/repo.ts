import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The unik checkout this code runs from (it holds kernel/, guest/ and examples/). */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'kernel', 'base.config'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the unik checkout (kernel/base.config) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  cached = dir;
  return dir;
}
