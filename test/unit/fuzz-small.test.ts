// A small run of the API fuzzer (npm run fuzz does 10,000): a fixed seed, so a regression on
// a known case shows at once, and a fresh seed each run, printed so a failure can be replayed
// with FUZZ_SEED=<seed> FUZZ_CASES=<n> node dist/test/fuzz/main.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz, summaryLine, type FuzzResult } from '../fuzz/api.fuzz.js';

const CASES = Number(process.env.FUZZ_SMALL_CASES) || 300;

function assertClean(r: FuzzResult): void {
  const shown = r.failures.map((f) => `${f.kind}: ${f.method} ${f.target} ${JSON.stringify(f.headers)} ${f.body ?? ''}\n  → ${f.detail}`).join('\n');
  const why = `${summaryLine(r)}\nreplay: FUZZ_SEED=${r.seed} FUZZ_CASES=${r.cases} node dist/test/fuzz/main.js\n${shown}`;
  assert.equal(r.cases, CASES, why);
  assert.equal(r.crashes, 0, why);
  assert.equal(r.hangs, 0, why);
  assert.equal(r.fiveXx, 0, why);
  assert.equal(r.unclear, 0, why);
  assert.equal(r.leaks, 0, why);
  assert.equal(r.heldConnections, 0, why);
  assert.deepEqual(r.failures, [], why);
  // the run reached the daemon through both transports and most of the modelled routes
  assert.ok(r.transports.inject > 0 && r.transports.socket > 0, why);
  assert.ok(r.routes.hit >= r.routes.modelled * 0.8, `${r.routes.hit}/${r.routes.modelled} routes hit\n${why}`);
  assert.ok(Object.keys(r.status).some((s) => s.startsWith('2')) && Object.keys(r.status).some((s) => s.startsWith('4')), why);
}

test(`fuzz: ${CASES} requests, fixed seed`, { timeout: 300_000 }, async () => {
  assertClean(await runFuzz({ cases: CASES, seed: 20240612 }));
});

test(`fuzz: ${CASES} requests, fresh seed`, { timeout: 300_000 }, async () => {
  const seed = Date.now() % 2 ** 31;
  console.log(`fuzz seed ${seed}`);
  assertClean(await runFuzz({ cases: CASES, seed }));
});
