import type { Readable } from 'node:stream';

/** The longest line kept from a child's output; anything past it is dropped up to the next line end. */
export const MAX_LINE_BYTES = 64 * 1024;
export const LINE_CUT_MARK = '… (line cut)';

/**
 * Calls `onLine` with each line of `input` (ends: \n, \r\n or a lone \r, as readline splits),
 * the last one even without an end. Unlike readline, memory stays bounded whatever the child
 * prints: a line longer than `maxBytes` is given as its first `maxBytes` bytes (cut at a UTF-8
 * character boundary) plus LINE_CUT_MARK, and the rest of it is discarded.
 */
export function splitLines(input: Readable, onLine: (line: string) => void, maxBytes = MAX_LINE_BYTES): void {
  let parts: Buffer[] = [];
  let held = 0; // bytes in parts
  let discarding = false; // past the cut of an overlong line, until its end
  let afterCr = false; // the last byte seen was a \r: a \n right after it ends nothing

  const emit = () => {
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
    parts = [];
    held = 0;
    onLine(buf.toString('utf8'));
  };
  const add = (chunk: Buffer) => {
    if (discarding || chunk.length === 0) return;
    if (held + chunk.length <= maxBytes) {
      parts.push(chunk);
      held += chunk.length;
      return;
    }
    let cut = maxBytes - held;
    // never split a UTF-8 character: back off over continuation bytes (10xxxxxx)
    for (let i = 0; i < 3 && cut > 0 && (chunk[cut]! & 0xc0) === 0x80; i++) cut--;
    parts.push(chunk.subarray(0, cut));
    held += cut;
    const buf = Buffer.concat(parts, held);
    parts = [];
    held = 0;
    discarding = true;
    onLine(buf.toString('utf8') + LINE_CUT_MARK);
  };

  input.on('data', (data: Buffer | string) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let pos = 0;
    if (afterCr && chunk[0] === 0x0a) pos = 1;
    afterCr = false;
    // the next \n and \r from pos, each searched again only once passed (linear in the chunk)
    let nl = chunk.indexOf(0x0a, pos);
    let cr = chunk.indexOf(0x0d, pos);
    while (pos < chunk.length) {
      if (nl !== -1 && nl < pos) nl = chunk.indexOf(0x0a, pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf(0x0d, pos);
      const end = nl === -1 ? cr : cr === -1 ? nl : Math.min(nl, cr);
      if (end === -1) {
        add(chunk.subarray(pos));
        break;
      }
      add(chunk.subarray(pos, end));
      if (discarding) discarding = false; // the cut line was already given
      else emit();
      pos = end + 1;
      if (chunk[end] === 0x0d) {
        if (pos === chunk.length) afterCr = true;
        else if (chunk[pos] === 0x0a) pos++;
      }
    }
  });
  input.on('end', () => {
    if (held > 0) emit();
  });
}
