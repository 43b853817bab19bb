// `npm run crash [-- --trials N] [--seed S]`: N crash trials (default 100) against a real daemon
// (see run.ts), a summary table, bench/results/crash-<date>.json, and for a full-size run
// (N ≥ 100) the figures in the README between its crash markers. Exits 1 if any counter is
// not 0 or the run was cut short.
//   --no-readme   leave the README alone
//   --keep-home   keep the daemon's home for a look afterwards
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { COUNTERS } from './invariants.js';
import { nonZero, runCrash, summaryTable } from './run.js';
import { crashReadmeBlock, writeCrashReadme } from './readme.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const FULL_SIZE = 100;

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: String(FULL_SIZE) },
    seed: { type: 'string' },
    'no-readme': { type: 'boolean', default: false },
    'keep-home': { type: 'boolean', default: false },
  },
});
const trials = Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) {
  console.error(`--trials must be a whole number above 0, got ${values.trials}`);
  process.exit(2);
}
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
if (!Number.isInteger(seed)) {
  console.error(`--seed must be a whole number, got ${values.seed}`);
  process.exit(2);
}

console.error(`crash: ${trials} trials, seed ${seed}`);
const r = await runCrash({ trials, seed, keepHome: values['keep-home'], log: (l) => console.error(`  ${l}`) });

console.log('');
console.log(summaryTable(r));
const date = new Date().toISOString();
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = `bench/results/crash-${date.slice(0, 10)}.json`;
writeFileSync(join(ROOT, file), JSON.stringify({ module: 'crash', date, host: hostname(), ...r }, null, 2) + '\n');
console.log(`\nwritten to ${file} (${(r.totalMs / 60_000).toFixed(1)} min)`);
if (values['keep-home']) console.log(`home kept: ${r.home}`);

const bad = nonZero(r.counters);
for (const p of r.problems) console.error(`harness: ${p}`);
if (r.aborted) console.error(`\nthe run was cut short after ${r.trialsRun} of ${r.trialsRequested} trials: ${r.aborted}`);
if (values['no-readme']) console.log('README left alone (--no-readme)');
else if (r.aborted || trials < FULL_SIZE) console.log(`README left alone: only a full run (${FULL_SIZE}+ trials, not cut short) goes there`);
else if (writeCrashReadme(join(ROOT, 'README.md'), crashReadmeBlock(r, date, file))) console.log('README figures updated');

if (Object.keys(bad).length) {
  console.error('\nviolations:');
  for (const c of COUNTERS) {
    if (!r.counters[c]) continue;
    console.error(`  ${c}: ${r.counters[c]}`);
    for (const t of r.trials) {
      const details = t.violations.filter((v) => v.counter === c).map((v) => v.detail);
      if (c === 'failedTrials' && t.failed) details.push(t.failed);
      if (c === 'daemonFailedToRestart' && t.restartFailed) details.push(`${t.restartFailed}\n${t.daemonLog ?? ''}`);
      const where = `trial ${t.n} (${t.op} ${t.subject}${t.killedAtMs !== undefined ? `, killed at ${t.killedAtMs} ms` : ''}${t.acked ? `, acked ${t.ackedWhat}` : ''})`;
      // the daemon's log tail goes with a failed restart; other details are one line each
      for (const d of details) console.error(`    ${where}: ${c === 'daemonFailedToRestart' ? d.replace(/\n/g, '\n      ') : d.split('\n')[0]}`);
    }
  }
  console.error(`\nreplay: node dist/test/crash/main.js --trials ${r.trialsRequested} --seed ${r.seed}`);
}
process.exit(Object.keys(bad).length || r.aborted ? 1 : 0);
