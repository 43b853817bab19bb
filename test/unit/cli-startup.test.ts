// What the CLI skips to start fast must not change what it does: main.ts loads only the command
// module a line names (src/cli/lazy.ts), collate() skips ICU, plain tables skip cli-table3.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMAND_MODULE, MODULES, commandWord, programFor } from '../../src/cli/lazy.js';
import { buildProgram } from '../../src/cli/program.js';
import { rootCommand } from '../../src/cli/root.js';
import { collate } from '../../src/cli/output.js';

const namesOf = (c: { name(): string; aliases(): string[] }) => [c.name(), ...c.aliases()];

test('every command name and alias maps to the module that registers it, and nothing else is listed', async () => {
  const seen: Record<string, string> = {};
  for (const [module, load] of Object.entries(MODULES)) {
    const root = rootCommand();
    (await load())(root);
    for (const c of root.commands) for (const n of namesOf(c)) seen[n] = module;
  }
  assert.deepEqual(seen, { ...COMMAND_MODULE });
  const all = buildProgram().commands.flatMap(namesOf).sort();
  assert.deepEqual(all, Object.keys(COMMAND_MODULE).sort());
});

test('the command word: after root options and their values; version first; none for help or an unusual line', () => {
  const root = rootCommand();
  assert.equal(commandWord(root, ['ps']), 'ps');
  assert.equal(commandWord(root, ['--host', '10.0.0.1:3000', 'ps', '--json']), 'ps');
  assert.equal(commandWord(root, ['--host=10.0.0.1:3000', '--tls', '--tlscacert', 'ca.pem', 'images']), 'images');
  assert.equal(commandWord(root, ['--client-config', 'x.yaml', 'target', '--host', 'h']), 'target');
  assert.equal(commandWord(root, ['--version']), 'version');
  assert.equal(commandWord(root, ['-v']), 'version');
  assert.equal(commandWord(root, []), undefined);
  assert.equal(commandWord(root, ['--help']), undefined);
  assert.equal(commandWord(root, ['-h', 'ps']), undefined);
  assert.equal(commandWord(root, ['--help', 'ps']), undefined);
  assert.equal(commandWord(root, ['ps', '--help']), 'ps');
  assert.equal(commandWord(root, ['--', 'ps']), undefined);
});

test('programFor: one module for a known command, the whole tree otherwise', async () => {
  const names = async (...args: string[]) => (await programFor(['node', 'unik', ...args])).commands.flatMap(namesOf);
  assert.deepEqual((await names('ps')).sort(), ['delete', 'delete-instance', 'describe-instance', 'instances', 'l', 'logs', 'ps', 'r', 'rm', 'run', 'start', 'stop']);
  assert.deepEqual(await names('--version'), []);
  const all = buildProgram().commands.flatMap(namesOf);
  assert.deepEqual(await names('help', 'ps'), all);
  assert.deepEqual(await names('pss'), all);
  assert.deepEqual(await names('toString'), all);
});

test('collate orders as localeCompare does', () => {
  const words = ['go-http', 'a', 'B', 'b', 'a.b', 'a-b', 'ab', 'a_b', 'Zeta', 'éclair', 'e', '10', '9', '', 'x1', 'x-1'];
  const times = ['2026-11-28T15:23:35.123Z', '2026-11-28T15:23:35Z', '2026-11-28T15:23:35.1Z', '2025-01-01T00:00:00.000Z', '2026-11-28T15:23:36.000Z'];
  for (const list of [words, times, [...words, ...times]]) {
    const sign = (n: number) => Math.sign(n);
    for (const a of list) for (const b of list) assert.equal(sign(collate(a, b)), sign(a.localeCompare(b)), `${a} vs ${b}`);
  }
});

test('tables of printable ASCII are laid out as cli-table3 lays them out', async () => {
  const { renderTable, renderWithTable3 } = await import('../../src/cli/output.js');
  const chars = 'ab Z09-._:/>()[]';
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const cell = () => Array.from({ length: rnd(14) }, () => chars[rnd(chars.length)]).join('');
  for (let t = 0; t < 300; t++) {
    const cols = 1 + rnd(7);
    const head = Array.from({ length: cols }, cell);
    const rows = Array.from({ length: rnd(5) }, () => Array.from({ length: cols }, cell));
    assert.equal(renderTable(head, rows), renderWithTable3(head, rows), JSON.stringify({ head, rows }));
  }
  const wide = [['名前', 'x'], ['é\u0301', 'two\nlines']];
  assert.equal(renderTable(['A', 'B'], wide), renderWithTable3(['A', 'B'], wide));
});
