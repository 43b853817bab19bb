// Builds (once) the kernels the examples need, so the first `unik push` does not wait for it.
import { PREPARED_KERNELS, ensureKernel } from '../src/base/linux/kernel.js';
import { ensureGuestInit } from '../src/base/linux/init.js';
import { unikPaths } from '../src/model/paths.js';

const paths = unikPaths();
const started = Date.now();
for (const fragments of PREPARED_KERNELS) {
  let last = '';
  const k = await ensureKernel(paths.kernels, [...fragments], (p) => {
    const line = p.percent === undefined ? p.message : `${p.message} ${p.percent}%`;
    if (line === last) return;
    last = line;
    if (process.stdout.isTTY && p.percent !== undefined) process.stdout.write(`\r[kernel] ${line}   `);
    else process.stdout.write(`[kernel] ${line}\n`);
  });
  if (process.stdout.isTTY) process.stdout.write('\n');
  console.log(`kernel ${fragments.join('+')}: ${k.file} (${(k.sizeBytes / 1e6).toFixed(2)} MB)`);
}
console.log(`guest init: ${await ensureGuestInit(paths.cache)}`);
console.log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
