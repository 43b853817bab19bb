import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RotatingConsole } from '../../src/supervisor/console.js';
import { readLogLines } from '../../src/core/logs.js';

test('the console never grows past its limit: the older part moves to .1, the one before is dropped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-console-'));
  try {
    const file = join(dir, 'console.log');
    const c = new RotatingConsole(file, 1000);
    for (let i = 0; i < 100; i++) c.write(Buffer.from(`line ${String(i).padStart(3, '0')} ${'x'.repeat(40)}\n`));
    c.close();
    assert.ok(statSync(file).size <= 1000, `console.log is ${statSync(file).size} bytes`);
    assert.ok(statSync(`${file}.1`).size <= 1000);
    const now = readFileSync(file, 'utf8');
    const before = readFileSync(`${file}.1`, 'utf8');
    assert.match(now, /line 099/);
    assert.ok(!before.includes('line 000'), 'the oldest part was dropped');
    // each write lands whole in one file or the other
    assert.ok(before.endsWith('\n') && now.endsWith('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a reader following the console starts again from the top of a rotated file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unik-console-'));
  try {
    const file = join(dir, 'console.log');
    const c = new RotatingConsole(file, 200);
    c.write(Buffer.from('a'.repeat(150) + '\n'));
    const first = await readLogLines(file, 0);
    c.write(Buffer.from('after the rotation\n'));
    const next = await readLogLines(file, first.next);
    assert.deepEqual(next.lines.map((l) => l.text), ['after the rotation']);
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
