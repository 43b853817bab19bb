// `npm run fuzz`: FUZZ_CASES generated requests (default 10,000) against both APIs, with
// FUZZ_SEED to replay a run. Prints one summary line and writes bench/results/fuzz-<date>.json,
// the file the README's figures come from. Exits 1 on any crash, hang, 5xx, unclear 4xx or leak.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { runFuzz, summaryLine } from './api.fuzz.js';
import { fuzzReadmeBlock, writeFuzzReadme } from './readme.js';

const ROOT = resolve(import.meta.dirname, '../../..');
// fuzzed requests never make bridges on this host
process.env.UNIK_BRIDGED = 'off';
const cases = Number(process.env.FUZZ_CASES) || 10_000;
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

const r = await runFuzz({ cases, seed, log: (l) => console.error(`  ${l}`) });
console.log(summaryLine(r));
const date = new Date().toISOString();
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const out = join(dir, `fuzz-${date.slice(0, 10)}.json`);
writeFileSync(out, JSON.stringify({ module: 'fuzz', date, host: hostname(), cores: cpus().length, node: process.version, ...r }, null, 2) + '\n');
console.log(`written to ${out}`);
const bad = r.crashes + r.hangs + r.fiveXx + r.unclear + r.leaks + r.heldConnections + r.failures.filter((f) => f.kind === 'dropped').length;
// the README shows a full-size, clean run only
if (!bad && cases >= 10_000 && writeFuzzReadme(join(ROOT, 'README.md'), fuzzReadmeBlock(r, date, `bench/results/fuzz-${date.slice(0, 10)}.json`))) console.log('README figures updated');
if (bad) {
  for (const f of r.failures) console.error(`${f.kind}: ${f.method} ${f.target} → ${f.detail}`);
  console.error(`replay: FUZZ_SEED=${r.seed} FUZZ_CASES=${r.cases} node dist/test/fuzz/main.js`);
}
process.exit(bad ? 1 : 0);
