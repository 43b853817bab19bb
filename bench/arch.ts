// `npm run bench:arch`: examples/go-http built for amd64 and for arm64 on this host, side by
// side in one run: the image's size (kernel + root) and `unik run` → first HTTP 200, cold boot
// beside cold boot (a daemon with boot snapshots off) and restore beside restore (a daemon with
// them on). Then every other language's example (and webfsd through elf) for both
// architectures: image size and restore → first 200. Both on the accelerator this host gives each: here TCG for both (no KVM), so an
// arm64 guest is emulated as an amd64 one is; on an arm64 host with KVM the arm64 row would be
// the native one.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, RUNS, startDaemon, stats, waitOk, writeModuleResult, writeReadmeBlock, type BenchDaemon, type Stats } from './lib.js';
import { freePort } from '../test/integration/harness.js';

const ARCHES = ['amd64', 'arm64'] as const;
type Arch = (typeof ARCHES)[number];

interface Sizes {
  imageBytes: number;
  kernelBytes: number;
  rootBytes: number;
}

async function buildBoth(d: BenchDaemon): Promise<Record<Arch, Sizes>> {
  const out = {} as Record<Arch, Sizes>;
  for (const arch of ARCHES) {
    const img = await d.build(`go-${arch}`, 'go-http', `?arch=${arch}`);
    const m = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
    out[arch] = { imageBytes: img.SizeBytes, kernelBytes: m.kernel.sizeBytes, rootBytes: m.root.sizeBytes };
  }
  return out;
}

/** `POST /instances/run` → the first 200 from the app, then the instance is removed. */
async function runToFirst200(d: BenchDaemon, image: string, name: string): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const r = await fetch(`${d.api}/instances/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ImageName: image, InstanceName: name, Ports: [`127.0.0.1:${port}:8080`] }) });
  if (r.status !== 201) throw new Error(`run ${image}: ${await r.text()}`);
  if (!(await waitOk(`http://127.0.0.1:${port}/ping_test`))) throw new Error(`${image} never answered`);
  const ms = performance.now() - t0;
  await fetch(`${d.api}/instances/${name}?force=true`, { method: 'DELETE' });
  return ms;
}

/** Each architecture in turn, RUNS times: both see the same machine at the same moments. */
async function interleaved(d: BenchDaemon, tag: string): Promise<Record<Arch, Stats>> {
  const ms: Record<Arch, number[]> = { amd64: [], arm64: [] };
  for (let i = 0; i < RUNS; i++) for (const arch of ARCHES) ms[arch].push(await runToFirst200(d, `go-${arch}`, `${tag}-${arch}-${i}`));
  return { amd64: stats(ms.amd64), arm64: stats(ms.arm64) };
}

async function waitForTemplates(d: BenchDaemon, images: string[]): Promise<void> {
  const until = Date.now() + 900_000;
  for (const name of images) {
    const img = (await (await fetch(`${d.api}/images/${name}`)).json()) as { Id: string };
    const dir = join(d.home, 'images', img.Id, 'snapshots');
    while (!(existsSync(dir) && readdirSync(dir).some((s) => existsSync(join(dir, s, 'state'))))) {
      if (Date.now() > until) throw new Error(`no boot snapshot of ${name}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Every other language's example, answering /ping_test on 8080 like go-http. */
const APPS = [
  { label: 'C', key: 'c', dir: 'c-http' },
  { label: 'Node.js', key: 'node', dir: 'node-http' },
  { label: 'Python', key: 'python', dir: 'python-http' },
  { label: 'Java', key: 'java', dir: 'java-http' },
  { label: 'elf (Debian webfsd)', key: 'webfs', dir: join(ROOT, 'test/fixtures/elf-webfs') },
] as const;
const LANG_RUNS = Math.min(RUNS, 3);

interface LangRow {
  label: string;
  sizes: Record<Arch, number>;
  restoreMs: Record<Arch, Stats>;
}

/** Each app for both architectures in one daemon, restored from its boot snapshot, interleaved. */
async function languages(d: BenchDaemon): Promise<LangRow[]> {
  const sizes: Record<string, Record<Arch, number>> = {};
  for (const app of APPS) {
    sizes[app.key] = { amd64: 0, arm64: 0 };
    for (const arch of ARCHES) sizes[app.key]![arch] = (await d.build(`${app.key}-${arch}`, app.dir, `?arch=${arch}`)).SizeBytes;
  }
  await waitForTemplates(d, APPS.flatMap((a) => ARCHES.map((arch) => `${a.key}-${arch}`)));
  const ms: Record<string, Record<Arch, number[]>> = Object.fromEntries(APPS.map((a) => [a.key, { amd64: [], arm64: [] }]));
  for (let i = 0; i < LANG_RUNS; i++)
    for (const app of APPS) for (const arch of ARCHES) ms[app.key]![arch].push(await runToFirst200(d, `${app.key}-${arch}`, `lang-${app.key}-${arch}-${i}`));
  return APPS.map((a) => ({ label: a.label, sizes: sizes[a.key]!, restoreMs: { amd64: stats(ms[a.key]!.amd64), arm64: stats(ms[a.key]!.arm64) } }));
}

// the machine's load beside the figures: other work on its 2 cores slows TCG guests (both architectures alike: interleaved)
const loadBefore = loadavg()[0]!;
const coldDaemon = await startDaemon('arch-cold', { UNIK_SNAPSHOTS: '0' });
let sizes: Record<Arch, Sizes>;
let cold: Record<Arch, Stats>;
try {
  sizes = await buildBoth(coldDaemon);
  cold = await interleaved(coldDaemon, 'cold');
} finally {
  await coldDaemon.stop();
}
const warmDaemon = await startDaemon('arch-restore');
let restore: Record<Arch, Stats>;
try {
  await buildBoth(warmDaemon);
  await waitForTemplates(warmDaemon, ARCHES.map((a) => `go-${a}`));
  restore = await interleaved(warmDaemon, 'restore');
} finally {
  await warmDaemon.stop();
}
const langDaemon = await startDaemon('arch-languages');
let langs: LangRow[];
try {
  langs = await languages(langDaemon);
} finally {
  await langDaemon.stop();
}

const loadAfter = loadavg()[0]!;
const result = { runs: RUNS, accel: 'tcg', loadAverage: { before: loadBefore, after: loadAfter }, sizes, coldMs: cold, restoreMs: restore, languageRuns: LANG_RUNS, languages: langs };
const out = writeModuleResult('arch', result);
const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const s = (x: Stats) => `${(x.median / 1000).toFixed(2)} s (${(x.min / 1000).toFixed(2)}–${(x.max / 1000).toFixed(2)})`;
const row = (arch: Arch, machine: string) =>
  `| ${arch} | ${machine} | ${mb(sizes[arch].imageBytes)} (kernel ${mb(sizes[arch].kernelBytes)}, root ${mb(sizes[arch].rootBytes)}) | ${s(cold[arch])} | ${s(restore[arch])} |`;
const block = [
  `Latest \`npm run bench:arch\` (examples/go-http built for each architecture on this amd64 host; \`unik run\` → first HTTP 200, TCG for both, median of ${RUNS} (min–max), interleaved; \`${out.slice(ROOT.length + 1)}\`):`,
  '',
  '| architecture | QEMU machine | image | cold boot → first 200 | restore → first 200 |',
  '|---|---|---|---|---|',
  row('amd64', '`microvm`'),
  row('arm64', '`virt` (Cortex-A72)'),
  '',
  `The host's 1-minute load average was ${loadBefore.toFixed(2)} when the run began and ${loadAfter.toFixed(2)} when it ended (2 cores).`,
  '',
  `arm64 vs amd64 here: cold boot ${(cold.arm64.median / cold.amd64.median).toFixed(2)}×, restore ${(restore.arm64.median / restore.amd64.median).toFixed(2)}×, image ${(sizes.arm64.imageBytes / sizes.amd64.imageBytes).toFixed(2)}×.`,
  '',
  `Every other language, each example built for both architectures in one daemon and restored from its boot snapshot (\`unik run\` → first HTTP 200, TCG for both, median of ${LANG_RUNS} (min–max), interleaved). The arm64 runtimes of Node.js, Python and Java and the arm64 webfsd are Debian's arm64 packages; the amd64 ones are this host's:`,
  '',
  '| language | amd64 image | arm64 image | amd64 restore → first 200 | arm64 restore → first 200 | arm64 / amd64 (restore) |',
  '|---|---|---|---|---|---|',
  ...langs.map((l) => `| ${l.label} | ${mb(l.sizes.amd64)} | ${mb(l.sizes.arm64)} | ${s(l.restoreMs.amd64)} | ${s(l.restoreMs.arm64)} | ${(l.restoreMs.arm64.median / l.restoreMs.amd64.median).toFixed(2)}× |`),
].join('\n');
console.log('\n' + block);
writeReadmeBlock('arch-bench', block);
console.log(`\nwritten to ${out}`);
