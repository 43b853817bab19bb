import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestLines } from '../../src/supervisor/guest-lines.js';

test('guest lines: ready and the first exit status, across chunk boundaries', () => {
  const g = new GuestLines();
  g.feed('unik:rea');
  assert.equal(g.ready, false);
  g.feed('dy\nnoise\nunik:ex');
  assert.equal(g.ready, true);
  g.feed('it 3\nunik:exit 9\n');
  assert.equal(g.exitCode, 3, 'the first exit status counts');
});

test('hostile guest lines: an endless line is not kept, odd exit lines are ignored', () => {
  const g = new GuestLines();
  for (let i = 0; i < 1000; i++) g.feed('x'.repeat(64 * 1024)); // 64 MB with no newline
  assert.ok((g as unknown as { partial: string }).partial.length <= 256);
  g.feed('\nunik:exit 99999999999999999999\nunik:exit -1\n unik:exit 4\n');
  assert.equal(g.exitCode, null);
  assert.equal(g.ready, false);
});
