// Builds (once) the kernels the examples need, so the first `unik push` does not wait for it.
// `demo`: only the one the Go example's image uses; the others are built when an image needs one.
import { PREPARED_KERNELS, ensureKernel, kernelFragments } from '../src/base/linux/kernel.js';
import { ensureGuestInit } from '../src/base/linux/init.js';
import { defaultArch } from '../src/model/arch.js';
import { unikPaths } from '../src/model/paths.js';

const paths = unikPaths();
const demo = process.argv[2] === 'demo';
const arch = defaultArch();
// the first is the demo's (examples/go-http, no volumes)
const sets = (demo ? PREPARED_KERNELS.slice(0, 1) : PREPARED_KERNELS).map((f) => kernelFragments(arch, [...f]));
const started = Date.now();
for (const fragments of sets) {
  let last = '';
  const k = await ensureKernel(paths.kernels, fragments, (p) => {
    const line = p.percent === undefined ? p.message : `${p.message} ${p.percent}%`;
    if (line === last) return;
    last = line;
    if (process.stdout.isTTY && p.percent !== undefined) process.stdout.write(`\r[kernel] ${line}   `);
    else process.stdout.write(`[kernel] ${line}\n`);
  }, arch);
  if (process.stdout.isTTY) process.stdout.write('\n');
  console.log(`kernel ${fragments.join('+')}: ${k.file} (${(k.sizeBytes / 1e6).toFixed(2)} MB)`);
}
console.log(`guest init: ${await ensureGuestInit(paths.cache, arch)}`);
console.log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
