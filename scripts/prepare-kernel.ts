// Builds (once) the kernels the examples need, so the first `unik push` does not wait for it.
// `demo`: only the one the Go example's image uses; the others are built when an image needs one.
import { ensureKernel, kernelFragments } from '../src/base/linux/kernel.js';
import { ensureGuestInit } from '../src/base/linux/init.js';
import { defaultArch } from '../src/model/arch.js';
import { unikPaths } from '../src/model/paths.js';

const paths = unikPaths();
const demo = process.argv[2] === 'demo';
const arch = defaultArch();
// the kernels images get: without and with volumes (src/compilers + src/core/images.ts)
const sets = (demo ? [['net']] : [['net'], ['net', 'block', 'ext4', 'fat']]).map((f) => kernelFragments(arch, f));
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
