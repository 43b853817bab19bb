// `npm run bench:volumes`: volume creation through the daemon, beside the same work done by the
// daemon's own code without the API, in the same run (the reference): a 1 GiB empty ext4 volume,
// and one from a 100 MB directory (POSTed as a tar, as the CLI does). The reference calls
// src/volumes/mkfs.ts makeFilesystem — the sparse file and the very `mkfs.ext4` argv the daemon
// runs — timed the same way (wall clock around the call, in a Node process, on the same disk);
// for the directory also with the daemon's unpack and sizing before it, so that the ratio shows
// what the API adds (upload, HTTP, bookkeeping) and not a different mkfs.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { unpack } from '../src/core/tarball.js';
import { dirBytes, makeFilesystem, sizeFor } from '../src/volumes/mkfs.js';
import { SMOKE, startDaemon, stats as median, writeModuleResult } from './lib.js';

const RUNS = SMOKE ? 1 : Number(process.env.BENCH_RUNS) || 5;
const fmt = (x: { median: number; min: number; max: number }) => `${(x.median / 1000).toFixed(3)} s (${(x.min / 1000).toFixed(3)}–${(x.max / 1000).toFixed(3)})`;
const GiB = 1024 * 1024 * 1024;

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
  // the reference works beside the daemon's volumes, on the same filesystem
  const ref = join(home, 'ref');
  mkdirSync(ref);

  const empty: number[] = [];
  const fromDir: number[] = [];
  const refEmpty: number[] = [];
  const refDir: number[] = [];
  const refUnpackDir: number[] = [];
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

    const img = join(ref, `disk${i}.img`);
    t = performance.now();
    await makeFilesystem({ file: img, type: 'ext4', sizeBytes: GiB, label: `e${i}` });
    refEmpty.push(performance.now() - t);
    rmSync(img);
    // the directory as the daemon sizes it, made by the same call
    t = performance.now();
    await makeFilesystem({ file: img, type: 'ext4', sizeBytes: sizeFor(await dirBytes(data), 'ext4'), label: `d${i}`, fromDir: data });
    refDir.push(performance.now() - t);
    rmSync(img);
    // and the daemon's steps from the tar on: unpack, size, mkfs
    const unpacked = join(ref, `data${i}`);
    t = performance.now();
    await unpack(tarball, unpacked, { allowEmpty: true });
    await makeFilesystem({ file: img, type: 'ext4', sizeBytes: sizeFor(await dirBytes(unpacked), 'ext4'), label: `d${i}`, fromDir: unpacked });
    refUnpackDir.push(performance.now() - t);
    rmSync(img);
    rmSync(unpacked, { recursive: true, force: true });
    await fetch(`${api}/volumes/e${i}`, { method: 'DELETE' });
    await fetch(`${api}/volumes/d${i}`, { method: 'DELETE' });
  }
  const result = {
    runs: RUNS,
    reference: "src/volumes/mkfs.ts makeFilesystem (the daemon's sparse file + mkfs.ext4 argv), called in-process",
    emptyGiB: median(empty),
    from100MB: median(fromDir),
    mkfsEmptyGiB: median(refEmpty),
    mkfsFrom100MB: median(refDir),
    unpackMkfsFrom100MB: median(refUnpackDir),
  };
  const out = writeModuleResult('volumes', result);
  console.log(`\nunik volume benchmark (median of ${RUNS}, min–max; ratio = unik API ÷ reference)\n`);
  console.log("| volume | unik API (POST /volumes) | reference: the daemon's own mkfs (makeFilesystem) | ratio |");
  console.log('|---|---|---|---|');
  console.log(`| 1 GiB, empty ext4 | ${fmt(result.emptyGiB)} | sparse file + mkfs.ext4: ${fmt(result.mkfsEmptyGiB)} | ${(result.emptyGiB.median / result.mkfsEmptyGiB.median).toFixed(2)}× |`);
  console.log(`| from a 100 MB directory (uploaded as a tar) | ${fmt(result.from100MB)} | mkfs.ext4 -d of the directory: ${fmt(result.mkfsFrom100MB)} | ${(result.from100MB.median / result.mkfsFrom100MB.median).toFixed(2)}× |`);
  console.log(`| from a 100 MB directory (uploaded as a tar) | ${fmt(result.from100MB)} | the daemon's unpack of the tar + mkfs.ext4 -d: ${fmt(result.unpackMkfsFrom100MB)} | ${(result.from100MB.median / result.unpackMkfsFrom100MB.median).toFixed(2)}× |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
