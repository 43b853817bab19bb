// Packs an application directory into the .tar.gz that POST /images/:name/create expects.
import { randomUUID } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';

/** The directory to pack is missing or unusable: the user's mistake, not a bug. */
export class PackError extends Error {
  override readonly name = 'PackError';
}

// Never shipped: VCS history and build caches only bloat the upload.
const EXCLUDED = [['.git'], ['node_modules', '.cache']];

function excluded(relPath: string): boolean {
  const parts = relPath.split('/').filter((p) => p && p !== '.');
  return EXCLUDED.some((pattern) =>
    parts.some((_, i) => pattern.every((p, j) => parts[i + j] === p)),
  );
}

/**
 * Writes a gzipped tar of `dir`'s contents ('.'-rooted, relative paths) to a new temp file and
 * returns its path. The caller deletes it.
 */
export async function packDirectory(dir: string): Promise<string> {
  const root = resolve(dir);
  let st;
  try {
    st = await stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PackError(
      code === 'ENOENT' ? `cannot pack ${dir}: no such directory` : `cannot pack ${dir}: ${(err as Error).message}`,
    );
  }
  if (!st.isDirectory()) throw new PackError(`cannot pack ${dir}: not a directory`);

  const file = join(tmpdir(), `unik-src-${randomUUID()}.tar.gz`);
  // If the app dir contains the temp dir, don't pack the archive into itself.
  const selfRel = file.startsWith(root + sep) ? './' + file.slice(root.length + 1).split(sep).join('/') : undefined;
  try {
    // loaded here, not at the top: every CLI command imports this module (for PackError)
    const tar = await import('tar');
    await tar.c(
      {
        gzip: true,
        portable: true,
        cwd: root,
        file,
        filter: (path: string) => path !== selfRel && !excluded(path),
      },
      ['.'],
    );
  } catch (err) {
    await rm(file, { force: true });
    throw new PackError(`cannot pack ${dir}: ${(err as Error).message}`);
  }
  return file;
}
