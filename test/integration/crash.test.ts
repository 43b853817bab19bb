// `npm run crash` in small: one trial of each kind (build, run with and without a published
// port, stop, start, rm -f, pull, volume create, and a supervisor SIGKILL), with a fixed seed,
// through the same harness (test/crash/run.ts). The daemon is SIGKILLed in the middle of each
// operation and started again; every counter must stay 0. It writes nothing but its own
// temporary home (no README, no bench/results). CRASH_VERBOSE=1 prints each trial as it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPS, nonZero, runCrash, summaryTable, trialLine } from '../crash/run.js';

const SEED = 20261127;

test('crash: a daemon killed during each kind of operation, and a killed supervisor, lose and leak nothing', { timeout: 600_000 }, async () => {
  const r = await runCrash({ trials: OPS.length, seed: SEED, ...(process.env.CRASH_VERBOSE ? { log: (l: string) => console.error(`  ${l}`) } : {}) });
  const indent = (s: string) => s.replace(/^/gm, '      ');
  const report = [
    '',
    summaryTable(r),
    ...r.trials.filter((t) => t.violations.length || t.failed || t.restartFailed).map((t) => `${trialLine(t)}${t.failed?.includes('\n') ? `\n    ${t.failed}` : ''}${t.daemonLog ? `\n    daemon log:\n${indent(t.daemonLog)}` : ''}`),
    ...r.problems.map((p) => `harness: ${p}`),
    `replay: node dist/test/crash/main.js --trials ${r.trialsRequested} --seed ${r.seed}`,
  ].join('\n');
  assert.equal(r.aborted, undefined, `the run was cut short: ${r.aborted}${report}`);
  assert.deepEqual(OPS.filter((o) => r.perOp[o].trials !== 1), [], `one trial of each kind${report}`);
  assert.deepEqual(nonZero(r.counters), {}, `every counter is 0${report}`);
});
