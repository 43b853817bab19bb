// `npm run bench:volumes`: volume creation through the daemon, beside the bare tools doing the
// same work in the same run (the reference): a 1 GiB empty ext4 volume, and one from a 100 MB
// directory (POSTed as a tar, as the CLI does).
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SMOKE, startDaemon, stats as median, writeModuleResult } from './lib.js';

const RUNS = SMOKE ? 1 : Number(process.env.BENCH_RUNS) || 5;
const fmt = (x: { median: number; min: number; max: number }) => `${(x.median / 1000).toFixed(3)} s (${(x.min / 1000).toFixed(3)}–${(x.max / 1000).toFixed(3)})`;

const daemon = await startDaemon('volumes');
const { api, home } = daemon;
try {

  // 100 MB of data in 100 files of 1 MB (incompressible)
  const data = join(home, 'data');
  mkdirSync(data);
  for (let i = 0; i < 100; i++) writeFileSync(join(data, `f${i}.bin`), randomBytes(1024 * 1024));
  const tarball = join(home, 'data.tar');
  execFileSync('tar', ['-cf', tarball, '-C', data, '.']);
  const tarBytes = readFileSync(tarball);

  const empty: number[] = [];
  const fromDir: number[] = [];
  const refEmpty: number[] = [];
  const refDir: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    let r = await fetch(`${api}/volumes/e${i}?size=1024`, { method: 'POST' });
    if (r.status !== 201) throw new Error(`create failed: ${await r.text()}`);
    empty.push(performance.now() - t);

    const form = new FormData();
    form.append('tarfile', new Blob([tarBytes]), 'data.tar');
    t = performance.now();
    r = await fetch(`${api}/volumes/d${i}`, { method: 'POST', body: form });
    if (r.status !== 201) throw new Error(`create failed: ${await r.text()}`);
    fromDir.push(performance.now() - t);

    const img = join(home, `ref${i}.img`);
    t = performance.now();
    execFileSync('truncate', ['-s', '1G', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
    refEmpty.push(performance.now() - t);
    rmSync(img);
    t = performance.now();
    execFileSync('truncate', ['-s', '144M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', data, img]);
    refDir.push(performance.now() - t);
    rmSync(img);
    await fetch(`${api}/volumes/e${i}`, { method: 'DELETE' });
    await fetch(`${api}/volumes/d${i}`, { method: 'DELETE' });
  }
  const result = { runs: RUNS, emptyGiB: median(empty), from100MB: median(fromDir), mkfsEmptyGiB: median(refEmpty), mkfsFrom100MB: median(refDir) };
  const out = writeModuleResult('volumes', result);
  console.log(`\nunik volume benchmark (median of ${RUNS}, min–max)\n`);
  console.log('| volume | unik API (POST /volumes) | reference: the bare tools | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| 1 GiB, empty ext4 | ${fmt(result.emptyGiB)} | truncate + mkfs.ext4: ${fmt(result.mkfsEmptyGiB)} | ${(result.emptyGiB.median / result.mkfsEmptyGiB.median).toFixed(2)}x |`);
  console.log(`| from a 100 MB directory (uploaded as a tar) | ${fmt(result.from100MB)} | mkfs.ext4 -d of the directory: ${fmt(result.mkfsFrom100MB)} | ${(result.from100MB.median / result.mkfsFrom100MB.median).toFixed(2)}x |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
