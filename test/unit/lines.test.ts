// Child output is split into lines without ever holding an unbounded one (readline would).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { execFileCollect } from '../../src/util/exec.js';
import { LINE_CUT_MARK, MAX_LINE_BYTES, splitLines } from '../../src/util/lines.js';

function collect(chunks: (string | Buffer)[], max?: number): Promise<string[]> {
  const s = new PassThrough();
  const out: string[] = [];
  splitLines(s, (l) => out.push(l), max);
  return new Promise((resolve) => {
    s.on('end', () => resolve(out));
    for (const c of chunks) s.write(typeof c === 'string' ? Buffer.from(c) : c);
    s.end();
  });
}

test('lines end at \\n, \\r\\n or a lone \\r, across chunks; the last one needs no end', async () => {
  assert.deepEqual(await collect(['a\nb', 'c\r', '\nd\re\n\nf']), ['a', 'bc', 'd', 'e', '', 'f']);
  assert.deepEqual(await collect(['x\n']), ['x']);
  assert.deepEqual(await collect([]), []);
  // a UTF-8 character split over two chunks
  const euro = Buffer.from('€\n');
  assert.deepEqual(await collect([euro.subarray(0, 1), euro.subarray(1)]), ['€']);
});

test('a line past the cap is cut, marked, and the rest of it dropped up to its end', async () => {
  assert.deepEqual(await collect(['abcdefgh', 'ijk\nnext\n'], 5), [`abcde${LINE_CUT_MARK}`, 'next']);
  assert.deepEqual(await collect(['abcdefgh'], 5), [`abcde${LINE_CUT_MARK}`]);
  assert.deepEqual(await collect(['ab€'], 4), [`ab${LINE_CUT_MARK}`], 'never half a character');
});

test('a child printing 50 MB without a newline: bounded output, and the result comes back', async () => {
  const before = process.memoryUsage().rss;
  const lines: number[] = [];
  const r = await execFileCollect('head', ['-c', '50000000', '/dev/zero'], { onLine: (l) => lines.push(l.length) });
  assert.equal(r.code, 0);
  assert.ok(r.output.length <= MAX_LINE_BYTES + LINE_CUT_MARK.length + 1, `output is ${r.output.length} characters`);
  assert.ok(r.output.trimEnd().endsWith(LINE_CUT_MARK));
  assert.deepEqual(lines, [MAX_LINE_BYTES + LINE_CUT_MARK.length]);
  const grew = process.memoryUsage().rss - before;
  assert.ok(grew < 40 * 1024 * 1024, `memory grew by ${Math.round(grew / 1024 / 1024)} MB`);
});
