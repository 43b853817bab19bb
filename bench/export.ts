// `npm run bench:export`: the boot of an exported disk (examples/go-http, raw, on QEMU q35 with
// virtio devices) under BIOS (SeaBIOS + syslinux) and UEFI (OVMF + the unified kernel image),
// beside `unik run` on microvm in the same run — all cold boots (the daemon here has boot
// snapshots off), all on the same accelerator: process start → first HTTP 200.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ROOT, RUNS, startDaemon, stats, waitOk, writeModuleResult, writeReadmeBlock } from './lib.js';
import { freePort } from '../test/integration/harness.js';

const daemon = await startDaemon('export', { UNIK_SNAPSHOTS: '0' });
const { api, home } = daemon;
try {
  await daemon.build('go-http', 'go-http');
  const disk = join(home, 'go-http.raw');
  const res = await fetch(`${api}/images/go-http/export?format=raw&firmware=both`, { method: 'POST' });
  if (res.status !== 200) throw new Error(`export: ${await res.text()}`);
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(disk));

  const bootExported = async (uefi: boolean): Promise<number> => {
    const port = await freePort();
    const t0 = performance.now();
    const q = spawn('qemu-system-x86_64', ['-M', 'q35', '-accel', 'tcg', '-m', '256', '-nographic', '-nodefaults', '-no-reboot', ...(uefi ? ['-bios', '/usr/share/ovmf/OVMF.fd'] : []), '-snapshot', '-drive', `file=${disk},format=raw,if=virtio`, '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`, '-device', 'virtio-net-pci,netdev=n0'], { stdio: 'ignore' });
    try {
      if (!(await waitOk(`http://127.0.0.1:${port}/ping_test`, 240_000))) throw new Error('the exported disk never answered');
      return performance.now() - t0;
    } finally {
      q.kill('SIGKILL');
    }
  };
  const bootMicrovm = async (i: number): Promise<number> => {
    const port = await freePort();
    const t0 = performance.now();
    const r = await fetch(`${api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: 'go-http', InstanceName: `m${i}`, Ports: [`127.0.0.1:${port}:8080`] }) });
    if (r.status !== 201) throw new Error(`run: ${await r.text()}`);
    if (!(await waitOk(`http://127.0.0.1:${port}/ping_test`))) throw new Error('microvm never answered');
    const ms = performance.now() - t0;
    await fetch(`${api}/instances/m${i}?force=true`, { method: 'DELETE' });
    return ms;
  };

  const micro: number[] = [];
  const bios: number[] = [];
  const uefi: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    micro.push(await bootMicrovm(i));
    bios.push(await bootExported(false));
    uefi.push(await bootExported(true));
  }
  const result = { runs: RUNS, microvmColdMs: stats(micro), exportedBiosMs: stats(bios), exportedUefiMs: stats(uefi) };
  const out = writeModuleResult('export', result);
  const s = (x: { median: number; min: number; max: number }) => `${(x.median / 1000).toFixed(2)} s (${(x.min / 1000).toFixed(2)}–${(x.max / 1000).toFixed(2)})`;
  const block = [
    `Latest \`npm run bench:export\` (cold boot → first HTTP 200 of go-http, TCG, median of ${RUNS} (min–max); \`${out.slice(ROOT.length + 1)}\`):`,
    '',
    '| boot | time | vs `unik run` |',
    '|---|---|---|',
    `| \`unik run\` (microvm, cold boot) | ${s(result.microvmColdMs)} | 1× |`,
    `| exported raw disk, q35 + SeaBIOS + syslinux, virtio | ${s(result.exportedBiosMs)} | ${(result.exportedBiosMs.median / result.microvmColdMs.median).toFixed(1)}× |`,
    `| exported raw disk, q35 + OVMF + unified kernel image, virtio | ${s(result.exportedUefiMs)} | ${(result.exportedUefiMs.median / result.microvmColdMs.median).toFixed(1)}× |`,
  ].join('\n');
  console.log('\n' + block);
  writeReadmeBlock('export-bench', block);
  console.log(`\nwritten to ${out}`);
} finally {
  await daemon.stop();
}
