// `npm run bench:memory`: the memory floor (the smallest --memory at which the app still answers
// /ping_test, bisected in 8 MB steps) of each language example with its root in the initramfs
// and on a read-only erofs disk (unik.yaml rootDisk: false / true), cold boots only (boot
// snapshots off: a restore skips the unpacking whose cost this measures).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/integration/harness.js';
import { ROOT, SMOKE, smallestMemory, startDaemon, writeModuleResult } from './lib.js';

const EXAMPLES = (process.env.BENCH_EXAMPLES ?? 'node-http,python-http,java-http').split(',').filter(Boolean);
const BOOT_DEADLINE_MS = Number(process.env.BENCH_BOOT_DEADLINE_MS) || 90_000;

const daemon = await startDaemon('memory', { UNIK_SNAPSHOTS: '0' });
const { api } = daemon;
const scratch = mkdtempSync(join(tmpdir(), 'unik-bench-memory-'));

/** Runs the image with this much memory; true if it answers pong before the deadline. */
async function answers(image: string, memoryMb: number): Promise<boolean> {
  const port = await freePort();
  const r = await fetch(`${api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: image, Ports: [`${port}:8080`], MemoryMb: memoryMb }) });
  if (r.status !== 201) return false; // the guest died while booting
  const { Id } = (await r.json()) as { Id: string };
  const t = performance.now();
  try {
    while (performance.now() - t < BOOT_DEADLINE_MS) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/ping_test`, { signal: AbortSignal.timeout(500) });
        if (res.status === 200 && (await res.text()) === 'pong') return true;
      } catch {
        /* not yet */
      }
      const state = ((await (await fetch(`${api}/instances/${Id}`)).json()) as { State: string }).State;
      if (state === 'stopped' || state === 'error') return false;
      await sleep(50);
    }
    return false;
  } finally {
    await fetch(`${api}/instances/${Id}?force=true`, { method: 'DELETE' });
  }
}

interface Row { example: string; root: 'initramfs' | 'disk'; initramfsBytes: number; diskBytes: number; defaultMemoryMb: number; floorMb: number; probes: { mb: number; ok: boolean }[] }
const rows: Row[] = [];
try {
  for (const example of EXAMPLES) {
    for (const onDisk of [false, true]) {
      const dir = join(scratch, `${example}-${onDisk ? 'disk' : 'ram'}`);
      cpSync(join(ROOT, 'examples', example), dir, { recursive: true });
      writeFileSync(join(dir, 'unik.yaml'), `rootDisk: ${onDisk}\n`);
      const name = `${example}-${onDisk ? 'disk' : 'ram'}`;
      const img = await daemon.build(name, dir);
      const manifest = JSON.parse(readFileSync(join(daemon.home, 'images', img.Id, 'manifest.json'), 'utf8')) as { root: { sizeBytes: number }; rootDisk?: { sizeBytes: number } };
      const high = img.RunSpec.DefaultInstanceMemory;
      if (!(await answers(name, high))) throw new Error(`${name} does not answer at its default ${high} MB`);
      const floor = SMOKE ? { mb: high, probes: [] } : await smallestMemory((mb) => answers(name, mb), 16, high, 8, 7);
      rows.push({ example, root: onDisk ? 'disk' : 'initramfs', initramfsBytes: manifest.root.sizeBytes, diskBytes: manifest.rootDisk?.sizeBytes ?? 0, defaultMemoryMb: high, floorMb: floor.mb, probes: floor.probes });
      console.error(`${name}: floor ${floor.mb} MB (${floor.probes.map((p) => `${p.mb}${p.ok ? '✓' : '✗'}`).join(' ')})`);
    }
  }
  const out = writeModuleResult('memory-floor', { rows });
  console.log('\nmemory floor: smallest --memory that still answers /ping_test (cold boot, TCG, 8 MB steps)\n');
  console.log('| example | root | initramfs | root disk | default memory | floor |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.example} | ${r.root} | ${(r.initramfsBytes / 1e6).toFixed(2)} MB | ${r.diskBytes ? `${(r.diskBytes / 1e6).toFixed(2)} MB` : '–'} | ${r.defaultMemoryMb} MB | ${r.floorMb} MB |`);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
  rmSync(scratch, { recursive: true, force: true });
}
