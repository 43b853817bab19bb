import type { Readable } from 'node:stream';

/**
 * Reads a whole response body into memory, but never more than `cap` bytes: a registry that
 * sends more is cut off as soon as it passes the cap (the caller's `tooLarge` error is thrown).
 */
export async function readCapped(body: Readable, cap: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The first few KiB of an error body, for a message; the rest is dropped unread. */
export async function snippet(body: Readable, cap = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= cap) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, cap).toString('utf8');
}

/** A Content-Length header over the cap lets us refuse before reading a byte. */
export function declaredLength(headers: Record<string, string | string[] | undefined>): number | undefined {
  const v = headers['content-length'];
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  return n;
}
