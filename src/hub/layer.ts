import { constants, createReadStream } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { LAYOUT, MT } from './mediatypes.js';
import { badImage } from './oci-check.js';

// A pulled layer is unpacked by this module alone, never by a general tar extractor: it writes
// only the few files a unik image is made of, as regular files it creates itself, inside the
// pull's own folder. Links, devices, "..", absolute names and names outside unik/ are refused;
// the unpacked bytes of a whole pull are capped, so a small gzip bomb cannot fill the disk.

const KiB = 1024;
const MiB = 1024 * KiB;

/** The files a layer may write (tree-relative) and each one's own size cap (kernel and root: the pull's budget). */
const WRITABLE: Record<string, number> = {
  [LAYOUT.kernel]: Infinity,
  [LAYOUT.root]: Infinity,
  [LAYOUT.manifest]: 1 * MiB,
  [LAYOUT.urunc]: 64 * KiB,
};
const MAX_ENTRIES = 64;
const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Unpacked bytes left for the whole pull; each layer spends from it. */
export interface UnpackBudget {
  bytesLeft: number;
}

/** A pull may unpack a few times what it downloaded (kernel and root are compressed already), and never over the hard cap. */
export function unpackBudget(declaredBytes: number, hardCap: number): UnpackBudget {
  return { bytesLeft: Math.min(hardCap, 4 * declaredBytes + 64 * MiB) };
}

/** A tar name, canonicalised: "" for the root, "a/b" otherwise; throws on absolute or ".." names. */
export function entryName(raw: string, where: string): string {
  if (raw.includes('\0') || raw.includes('\\')) throw badImage(where, `has an entry with a NUL or backslash in its name: ${JSON.stringify(raw.slice(0, 120))}`);
  if (raw.startsWith('/')) throw badImage(where, `has an entry with an absolute name: ${JSON.stringify(raw.slice(0, 120))}`);
  let p = raw;
  while (p.startsWith('./')) p = p.slice(2);
  p = p.replace(/\/+$/, '');
  if (p === '' || p === '.') return '';
  if (p.split('/').some((s) => s === '' || s === '.' || s === '..')) throw badImage(where, `has an entry whose name is not a plain path inside the image: ${JSON.stringify(raw.slice(0, 120))}`);
  return p;
}

/** What to do with one entry: write it to a known name, skip it, or refuse the layer. */
function classify(entry: ReadEntry, where: string): { write?: string } {
  const name = entryName(entry.path, where);
  const inUnik = name.startsWith('unik/');
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile': {
      const cap = WRITABLE[name];
      if (cap !== undefined) {
        if (entry.size > cap) throw badImage(where, `its ${name} is ${entry.size} bytes; at most ${cap} are allowed`);
        return { write: name };
      }
      if (inUnik) return {}; // a file a later unik may add: read past it, never written
      throw badImage(where, `has the file ${JSON.stringify(name.slice(0, 120))} outside unik/`);
    }
    case 'Directory':
      if (name === '' || name === 'unik' || inUnik) return {}; // unik/ is made by the pull, not by the layer
      throw badImage(where, `has the directory ${JSON.stringify(name.slice(0, 120))} outside unik/`);
    default:
      throw badImage(where, `has ${JSON.stringify(name.slice(0, 120))} of type ${entry.type}${entry.linkpath ? ` (-> ${JSON.stringify(entry.linkpath.slice(0, 120))})` : ''}; only regular files and directories are allowed`);
  }
}

/** Counts the unpacked (tar) bytes against the budget, and refuses a tar that is itself compressed again. */
function guard(budget: UnpackBudget, where: string): Transform {
  let seen = 0;
  let head = Buffer.alloc(0);
  const starts = (magic: number[]) => head.length >= magic.length && magic.every((b, i) => head[i] === b);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > budget.bytesLeft) return cb(badImage(where, `unpacks to more than ${budget.bytesLeft} bytes (its compressed size is far smaller): refused as a decompression bomb`));
      if (head.length < 4) {
        head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
        // tar's parser would decompress a nested gzip/zstd on its own, past this counter
        if (starts(GZIP_MAGIC) || starts(ZSTD_MAGIC)) return cb(badImage(where, 'is compressed twice; a layer is one tar, compressed at most once'));
      }
      cb(null, chunk);
    },
    flush(cb) {
      budget.bytesLeft -= seen;
      cb();
    },
  });
}

/**
 * Unpacks one verified layer blob into `tree` (the pull's own folder). Later layers replace
 * earlier files of the same name, as OCI layers do.
 */
export async function unpackLayer(file: string, mediaType: string, tree: string, budget: UnpackBudget, where: string): Promise<void> {
  await mkdir(join(tree, 'unik'), { recursive: true });
  let problem: Error | undefined;
  let entries = 0;
  const written = new Set<string>();
  const writes: Promise<unknown>[] = [];
  const outs: Writable[] = [];
  const counter = guard(budget, where);
  const refuse = (e: Error) => {
    problem ??= e;
    counter.destroy(problem);
  };
  const parser = new Parser({ strict: true, maxMetaEntrySize: 64 * KiB });
  parser.on('ignoredEntry', (entry: ReadEntry) => refuse(badImage(where, `has an entry unik cannot read (${entry.type}, ${JSON.stringify(entry.path.slice(0, 120))})`)));
  parser.on('entry', (entry: ReadEntry) => {
    try {
      if (problem) throw problem;
      if (++entries > MAX_ENTRIES) throw badImage(where, `has over ${MAX_ENTRIES} entries`);
      const { write } = classify(entry, where);
      if (!write) return void entry.resume();
      if (written.has(write)) throw badImage(where, `holds ${write} twice`);
      written.add(write);
      writes.push(
        (async () => {
          // O_NOFOLLOW|O_TRUNC: a file we create ourselves, never through a link someone left there
          const fh = await open(join(tree, write), constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
          const out = fh.createWriteStream();
          outs.push(out);
          entry.pipe(out as unknown as Writable);
          await finished(out);
        })().catch((e: Error) => {
          entry.resume();
          refuse(problem ?? badImage(where, `could not be written (${e.message})`));
        }),
      );
    } catch (e) {
      entry.resume();
      refuse(e as Error);
    }
  });
  const source = createReadStream(file);
  const gz = mediaType === MT.layer || mediaType.endsWith('.gzip') || mediaType.endsWith('+gzip');
  try {
    await (gz ? pipeline(source, createGunzip(), counter, parser as unknown as Writable) : pipeline(source, counter, parser as unknown as Writable));
  } catch (e) {
    const first = problem;
    // stop half-written files before the caller removes the folder
    for (const out of outs) out.destroy();
    await Promise.allSettled(writes);
    if (first) throw first;
    throw badImage(where, `is not a valid ${gz ? 'tar.gz' : 'tar'} layer (${(e as Error).message.slice(0, 200)})`);
  }
  await Promise.all(writes);
  if (problem) throw problem;
}

/** After unpacking: the image's files are there, as regular files and nothing else. */
export async function checkUnpacked(tree: string, names: string[], where: string): Promise<Record<string, number>> {
  const sizes: Record<string, number> = {};
  for (const name of names) {
    const st = await lstat(join(tree, name)).catch(() => undefined);
    if (!st) throw badImage(where, `has no /${name}: it is not a unik image`);
    if (!st.isFile() || st.nlink !== 1) throw badImage(where, `its /${name} is not a regular file`);
    sizes[name] = st.size;
  }
  return sizes;
}
