// `npm run bench`: every bench module in turn (each a separate process with its own daemon),
// then bench/report.ts, which writes bench/results/<date>-<host>.{json,md,svg} and prints the table.
//   --smoke (or BENCH_SMOKE=1): one run each, tiny counts, the conventional VM only if cached.
//   BENCH_MODULES=core,languages: a subset.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SMOKE } from './lib.js';

const ALL = ['core', 'languages', 'density', 'tcg-buffer', 'api', 'cli', 'control-plane', 'volumes', 'hub', 'network'];
const modules = process.env.BENCH_MODULES ? process.env.BENCH_MODULES.split(',') : ALL;
const env = { ...process.env, ...(SMOKE ? { BENCH_SMOKE: '1' } : {}) };
const failed: string[] = [];
for (const m of modules) {
  if (!ALL.includes(m)) throw new Error(`unknown bench module ${m} (known: ${ALL.join(', ')})`);
  console.log(`\n=== bench ${m}${SMOKE ? ' (smoke)' : ''}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(import.meta.dirname, `${m}.js`)], { env, stdio: 'inherit' });
  console.log(`=== ${m}: ${r.status === 0 ? 'done' : `FAILED (exit ${r.status ?? r.signal})`} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed.push(m);
}
console.log('\n=== report');
const r = spawnSync(process.execPath, [join(import.meta.dirname, 'report.js')], { env, stdio: 'inherit' });
if (r.status !== 0) failed.push('report');
if (failed.length) {
  console.error(`bench: failed: ${failed.join(', ')}`);
  process.exit(1);
}
