import { gzipSync } from 'node:zlib';

// Upload bodies written byte by byte: tar archives (hostile entries included) and multipart
// forms (well-formed or broken). Hand-written because a tar library refuses to write the
// entries the daemon must refuse to read.

export interface TarEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  linkname?: string;
  data?: Buffer;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(e: TarEntry): Buffer {
  const h = Buffer.alloc(512);
  const name = Buffer.from(e.name, 'utf8');
  // names over 100 bytes go in the ustar prefix field (155) when they split on a "/"
  let prefix = Buffer.alloc(0);
  let short = name;
  if (name.length > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut > 0 && name.length - cut - 1 <= 100) {
      prefix = name.subarray(0, cut);
      short = name.subarray(cut + 1);
    } else short = name.subarray(0, 100);
  }
  short.copy(h, 0);
  h.write(octal(e.type === 'dir' ? 0o755 : 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(e.type === 'file' ? (e.data?.length ?? 0) : 0, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write({ file: '0', hardlink: '1', symlink: '2', dir: '5' }[e.type], 156, 'latin1');
  Buffer.from(e.linkname ?? '', 'utf8').subarray(0, 100).copy(h, 157);
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  prefix.copy(h, 345);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.type === 'file' && e.data?.length) {
      parts.push(e.data);
      const pad = (512 - (e.data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const gzip = (b: Buffer): Buffer => gzipSync(b);

export interface Part {
  name: string;
  /** a file part when set */
  filename?: string;
  contentType?: string;
  data: Buffer;
}

/** A multipart/form-data body; `broken` leaves out the closing boundary. */
export function multipart(boundary: string, parts: Part[], broken = false): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}`;
    const head = `--${boundary}\r\nContent-Disposition: ${disp}\r\n${p.contentType ? `Content-Type: ${p.contentType}\r\n` : ''}\r\n`;
    out.push(Buffer.from(head, 'utf8'), p.data, Buffer.from('\r\n'));
  }
  if (!broken) out.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(out);
}
