import { mkdir, stat } from 'node:fs/promises';
import * as tar from 'tar';
import { invalid } from './errors.js';

/** Unpacks an upload (tar or tar.gz), refusing anything that is not a tar or escapes the root. */
export async function unpack(tarball: string, dest: string, opts: { allowEmpty?: boolean } = {}): Promise<void> {
  await mkdir(dest, { recursive: true });
  const { size } = await stat(tarball);
  if (size === 0) throw invalid('BAD_TARBALL', 'the uploaded tarfile is empty', 'send a .tar.gz of the directory in the multipart field "tarfile"');
  let entries = 0;
  const problems: string[] = [];
  try {
    await tar.x({
      file: tarball,
      cwd: dest,
      strict: true,
      preservePaths: false,
      onReadEntry: () => void entries++,
      filter: (path) => {
        if (path.split('/').includes('..') || path.startsWith('/')) {
          problems.push(path);
          return false;
        }
        return true;
      },
    });
  } catch (e) {
    throw invalid('BAD_TARBALL', `the uploaded tarfile is not a valid tar or tar.gz archive: ${(e as Error).message}`, 'send a .tar.gz of the directory in the multipart field "tarfile"');
  }
  if (problems.length) throw invalid('BAD_TARBALL', `the tarfile has paths outside its root: ${problems.slice(0, 3).join(', ')}`);
  if (entries === 0 && !opts.allowEmpty) throw invalid('BAD_TARBALL', 'the uploaded tarfile is not a tar archive, or holds no files', 'send a .tar.gz of the directory in the multipart field "tarfile"');
}
