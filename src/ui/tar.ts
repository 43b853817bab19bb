// Packs the files of a folder picked in the browser into the .tar.gz that POST
// /images/:name/create takes, as `unik push` does with node-tar on the CLI's side.
// Written here (POSIX ustar, a pax header for a path too long for it) rather than taken from
// npm: the tar packages there write Node streams and Buffers, and a browser build of them would
// need a bundler; the format is a 512-byte header per entry. File bodies are never copied: the
// archive is a Blob of headers and the picked File objects.

export interface PackFile {
  /** '/'-separated, relative to the folder's root */
  path: string;
  data: Blob;
  /** ms since the epoch */
  mtime: number;
}

const BLOCK = 512;
const enc = new TextEncoder();
/** ustar sizes are 11 octal digits */
const MAX_SIZE = 8 ** 11 - 1;

// Never shipped, as the CLI's packer (src/client/tarball.ts): VCS history and build caches.
export function excluded(path: string): boolean {
  const parts = path.split('/');
  return parts.includes('.git') || parts.some((p, i) => p === 'node_modules' && parts[i + 1] === '.cache');
}

/**
 * The files a directory input gave (webkitRelativePath "folder/a/b.go"), relative to the folder
 * picked, without what is never shipped.
 */
export function folderFiles(list: ArrayLike<File>): PackFile[] {
  const out: PackFile[] = [];
  for (const f of Array.from(list)) {
    const path = (f.webkitRelativePath || f.name).split('/').slice(1).join('/');
    if (!path || excluded(path)) continue;
    out.push({ path, data: f, mtime: f.lastModified });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A ustar archive of the files (mode 0644), each preceded by entries for its folders (0755). */
export function tarOf(files: PackFile[]): Blob {
  const parts: BlobPart[] = [];
  const dirs = new Set<string>();
  for (const f of files) {
    const segs = f.path.split('/');
    if (segs.some((s) => s === '' || s === '.' || s === '..')) throw new Error(`cannot pack ${JSON.stringify(f.path)}: not a plain relative path`);
    if (f.data.size > MAX_SIZE) throw new Error(`cannot pack ${f.path}: larger than 8 GiB`);
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/') + '/';
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      parts.push(...entry(dir, '5', 0o755, 0, f.mtime));
    }
    parts.push(...entry(f.path, '0', 0o644, f.data.size, f.mtime), f.data, padding(f.data.size));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  return new Blob(parts, { type: 'application/x-tar' });
}

/** The blob, gzipped (CompressionStream: in every current browser, and in Node). */
export async function gzip(b: Blob): Promise<Blob> {
  return new Response(b.stream().pipeThrough(new CompressionStream('gzip'))).blob();
}

/** The header blocks of one entry: a pax header first when the path fits no ustar name. */
function entry(path: string, type: '0' | '5', mode: number, size: number, mtimeMs: number): Uint8Array<ArrayBuffer>[] {
  const mtime = Math.max(0, Math.floor(mtimeMs / 1000));
  const split = ustarName(path);
  if (split) return [header(split.name, split.prefix, type, mode, size, mtime)];
  const pax = enc.encode(paxRecord('path', path));
  // the ustar name of an entry with a pax path is a stand-in, as GNU tar and node-tar write it
  const stub = enc.encode(path).length > 100 ? path.slice(-90).replace(/^[^/]*\//, '') : path;
  return [header(`PaxHeader/${stub}`.slice(0, 99), '', 'x', 0o644, pax.length, mtime), pad(pax), header(stub.slice(0, 99), '', type, mode, size, mtime)];
}

/** A path as ustar's name (≤100 bytes) and prefix (≤155 bytes, split at a '/'), or undefined. */
export function ustarName(path: string): { name: string; prefix: string } | undefined {
  const len = (s: string) => enc.encode(s).length;
  if (len(path) <= 100) return { name: path, prefix: '' };
  for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (len(prefix) <= 155 && len(name) <= 100 && name !== '') return { name, prefix };
  }
  return undefined;
}

/** "LEN key=value\n", where LEN counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const n = enc.encode(body).length;
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return `${len}${body}`;
}

function header(name: string, prefix: string, type: string, mode: number, size: number, mtime: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(BLOCK);
  const put = (off: number, len: number, s: string) => b.set(enc.encode(s).subarray(0, len), off);
  const octal = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
  put(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, mtime);
  put(148, 8, '        ');
  put(156, 1, type);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(345, 155, prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return b;
}

function padding(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

function pad(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(data.length + padding(data.length).length);
  out.set(data);
  return out;
}
