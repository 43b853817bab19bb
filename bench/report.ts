// `node dist/bench/report.js`: gathers the newest result of every bench module for this host
// (bench/results/<date>-<host>-<module>.json) into one results file, bench/results/<date>-<host>.json,
// with the aims table and the sections boot, size, memory, density, build, api (and hub, volumes):
// every row has median/min/max, unit, and its reference and ratio (value / reference) where one
// exists, the row and its reference each named, so a ratio says what it compares. Writes the
// Markdown (<date>-<host>.md: accelerator, CPU, cores, QEMU version, date) and an SVG bar chart of
// boot medians (<date>-<host>.svg), prints them, and on a full run (not smoke) puts the same
// Markdown in README.md between <!-- bench:begin --> and <!-- bench:end -->: no figure there is
// typed by hand.
//
// The aims table: the rows of AIMS (issue 19's aims), each filled from the `aims` array of the
// newest result of any module that carries that id (bench/README.md, "Aims"), else "not
// measured"; then any other aims the modules report (e.g. core's first-push aims).
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { aimAtMost, hostInfo, RESULTS, ROOT, SMOKE, writeReadmeBlock, type Aim, type HostInfo, type Stats } from './lib.js';

export interface Figure extends Stats {
  unit: string;
}
export interface Row extends Figure {
  name: string;
  reference?: Figure & { name: string };
  /** median / reference median: below 1 means unik needs less (time, bytes, memory) */
  ratio?: number;
  note?: string;
}
export type Section = 'boot' | 'size' | 'memory' | 'density' | 'build' | 'api' | 'hub' | 'volumes';

/** the modules whose figures have sections here; any other module's result still counts for its aims */
const MODULES = ['core', 'languages', 'density', 'api', 'hub', 'volumes', 'cli', 'control-plane'] as const;
type Module = (typeof MODULES)[number];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
type Found = Partial<Record<Module, { file: string; data: Json }>> & Record<string, { file: string; data: Json } | undefined>;

/**
 * The newest result file of each module for `host`: <date>-<host>-<module>.json, the module and
 * host read from the file itself (a module's name may hold a hyphen, a host's too), newest by
 * its `date` field.
 */
export function latestResults(host = hostname()): Found {
  const found: Found = {};
  if (!existsSync(RESULTS)) return found;
  for (const f of readdirSync(RESULTS).sort()) {
    if (!new RegExp(`^\\d{4}-\\d{2}-\\d{2}-${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[a-z0-9-]+\\.json$`).test(f)) continue;
    let data: Json;
    try {
      data = JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as Json;
    } catch {
      continue; // a module still writing, or a stray file
    }
    if (typeof data?.module !== 'string' || data.host !== host || f !== `${f.slice(0, 10)}-${host}-${data.module}.json`) continue;
    const prev = found[data.module];
    if (!prev || String(data.date ?? '') >= String(prev.data.date ?? '')) found[data.module] = { file: f, data };
  }
  return found;
}

/** Issue 19's aims, in its order: which module is to measure each (its result's `aims` carries the id). */
export const AIMS: readonly { id: string; aim: string; target: string; module: string }[] = [
  { id: 'as-typed', aim: 'as typed: `unik run go-http -p …` → first HTTP 200, beside `podman run -d -p …` → first 200 of the same binary', target: '≤ ½ of podman', module: 'cli' },
  { id: 'api-run', aim: 'the API path: `POST /instances/run` → first HTTP 200 of go-http', target: '≤ 0.25 s', module: 'core' },
  { id: 'cli-ps', aim: '`unik ps` finishes', target: '≤ 0.1 s', module: 'cli' },
  { id: 'cli-version', aim: '`unik --version` finishes', target: '≤ 0.1 s', module: 'cli' },
  { id: 'idle-pss', aim: 'host memory of an idle go-http instance, PSS (RSS beside it)', target: '≤ 24 MB', module: 'density' },
  ...[1, 10, 50, 100].map((n) => ({ id: `density-${n}`, aim: `density: ${n} go-http instance${n > 1 ? 's' : ''} at once, time until all answer and total host memory, beside podman with as many containers`, target: 'all answer', module: 'density' })),
  { id: 'control-plane-p50', aim: 'control plane: `GET /instances` p50 with 1,000 instances and 1,000 images in the store, beside the empty store', target: 'reported', module: 'control-plane' },
  { id: 'control-plane-p99', aim: 'control plane: `GET /instances` p99 with 1,000 instances and 1,000 images in the store, beside the empty store', target: 'reported', module: 'control-plane' },
];

export interface AimRow extends Partial<Aim> {
  id: string;
  aim: string;
  target: string;
  /** the module that measured it (or is to) */
  module: string;
  measured: boolean;
}

/** The aims table: AIMS filled from the modules' results, then every other aim they report. */
export function aims(found: Found): AimRow[] {
  const reported = new Map<string, AimRow>();
  // newest module result last, so it wins when two report the same id
  for (const [module, r] of Object.entries(found).sort((a, b) => String(a[1]?.data.date ?? '').localeCompare(String(b[1]?.data.date ?? ''))))
    for (const a of (r?.data.aims ?? (module === 'core' && r?.data.unik ? coreAims(r.data) : [])) as Aim[]) if (a && typeof a.id === 'string') reported.set(a.id, { ...a, module, measured: true });
  const rows: AimRow[] = AIMS.map((a) => reported.get(a.id) ?? { ...a, measured: false });
  for (const [id, a] of reported) if (!AIMS.some((x) => x.id === id)) rows.push(a);
  return rows;
}

export function aimsTable(rows: AimRow[]): string {
  const out = ['| aim | target | measured | what it compares | met |', '|---|---|---|---|---|'];
  for (const a of rows) {
    const value = !a.measured ? `not measured (no \`${a.module}\` result for this host)` : a.value === null || a.value === undefined ? 'not measured in that run' : `**${num(a.value)}${a.unit === '×' ? '×' : a.unit ? ` ${a.unit}` : ''}**`;
    const met = !a.measured || a.value === null || a.value === undefined ? '—' : a.met === true ? 'yes' : a.met === false ? 'no' : 'reported';
    out.push(`| ${a.aim} | ${a.target} | ${value}${a.measured && a.detail ? ` (${a.detail})` : ''} | ${a.measured ? (a.compares ?? '') : ''} | ${met} |`);
  }
  return out.join('\n');
}

const one = (v: number, unit: string): Figure => ({ median: v, min: v, max: v, runs: 1, unit });
const fig = (x: Stats | number | undefined, unit: string, scale = 1): Figure | undefined =>
  x === undefined || x === null ? undefined : typeof x === 'number' ? one(x * scale, unit) : { median: x.median * scale, min: x.min * scale, max: x.max * scale, runs: x.runs, unit };

function row(name: string, value: Figure | undefined, refName?: string, ref?: Figure, note?: string): Row[] {
  if (!value) return [];
  const r: Row = { name, ...value };
  if (refName && ref) {
    r.reference = { name: refName, ...ref };
    if (ref.median) r.ratio = value.median / ref.median;
  }
  if (note) r.note = note;
  return [r];
}

export function collect(found: Found): Record<Section, Row[]> {
  const S: Record<Section, Row[]> = { boot: [], size: [], memory: [], density: [], build: [], api: [], hub: [], volumes: [] };
  const core = found.core?.data;
  const langs: Json[] = found.languages?.data.rows ?? [];
  const MB = 1e-6;
  if (core) {
    const u = core.unik, vm = core.conventionalVm, c = core.container, p = core.process;
    const vmOk = vm && !vm.skipped;
    const restoreOk = vmOk && vm.restoreS;
    const VM_COLD = 'conventional VM cold boot (Debian cloud kernel, systemd): QEMU start → first HTTP 200';
    const VM_RESTORE = 'conventional VM restored from its own QEMU snapshot (-incoming): QEMU start → first HTTP 200';
    const RESTORE = 'unik go-http restored from its boot snapshot: run → first HTTP 200';
    const COLD = 'unik go-http cold boot (UNIK_SNAPSHOTS=0): run → first HTTP 200';
    const vmNote = vmOk ? undefined : `conventional VM: ${vm?.skipped}`;
    S.boot.push(
      // like with like: restore beside restore, cold boot beside cold boot
      ...row(RESTORE, fig(u.bootS, 's'), restoreOk ? VM_RESTORE : undefined, restoreOk ? fig(vm.restoreS, 's') : undefined, restoreOk ? undefined : vmOk ? `conventional VM restore: ${vm.snapshot?.skipped ?? 'not measured in this run'}` : vmNote),
      ...(u.coldBootS ? row(COLD, fig(u.coldBootS, 's'), vmOk ? VM_COLD : undefined, vmOk ? fig(vm.bootS, 's') : undefined, vmNote) : []),
      // and as a user meets them
      ...row(RESTORE, fig(u.bootS, 's'), 'podman container: run -d → first HTTP 200', fig(c.bootS, 's')),
      ...row(RESTORE, fig(u.bootS, 's'), 'host process: spawn → first HTTP 200', fig(p.bootS, 's')),
    );
    const vmSize = vmOk ? one(vm.diskAllocatedBytes * MB, 'MB') : undefined;
    S.size.push(
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'conventional VM disk, allocated (raw ext4, kernel and initrd in /boot)', vmSize),
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'podman container image', fig(c.imageBytes, 'MB', MB)),
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'the static Go binary alone', fig(p.binaryBytes, 'MB', MB)),
      ...row('unik kernel', fig(u.kernelBytes, 'MB', MB), vmOk ? `conventional VM kernel + initrd (${vm.kernel})` : undefined, vmOk ? one((vm.kernelBytes + vm.initrdBytes) * MB, 'MB') : undefined),
      ...row('unik initramfs (init + app)', fig(u.rootBytes, 'MB', MB), vmOk ? 'conventional VM root tree (files)' : undefined, vmOk ? one(vm.rootTreeBytes * MB, 'MB') : undefined),
    );
    const rssVm = (m: number) => `conventional VM: host RSS of QEMU (-m ${m})`;
    S.memory.push(
      ...row('unik go-http: smallest memory that answers', fig(u.minMemoryMb, 'MB'), vmOk && vm.minMemoryMb ? 'conventional VM: smallest -m that answers' : undefined, vmOk && vm.minMemoryMb ? one(vm.minMemoryMb, 'MB') : undefined),
      ...row('unik go-http restored: host RSS of the VM process', fig(u.rssMb, 'MB'), restoreOk ? `${rssVm(vm.memoryMb)}, restored` : undefined, restoreOk ? fig(vm.restoreRssMb, 'MB') : undefined),
      ...row('unik go-http cold boot: host RSS of the VM process', fig(u.coldRssMb, 'MB'), vmOk ? `${rssVm(vm.memoryMb)}, cold boot` : undefined, vmOk ? fig(vm.rssMb, 'MB') : undefined),
      ...row('unik go-http restored: host RSS of the VM process', fig(u.rssMb, 'MB'), 'podman container: RSS of conmon + app', fig(c.rssMb, 'MB')),
      ...row('unik go-http restored: host RSS of the VM process', fig(u.rssMb, 'MB'), 'host process RSS', fig(p.rssMb, 'MB')),
    );
    // builds are timed where no template boot runs beside them (see core.ts)
    const quiet = u.buildTimedOn ? ', no template boot beside it' : '';
    S.build.push(
      ...row(`unik push go-http, cold (empty Go cache${quiet})`, fig(u.buildColdS, 's'), 'go build, cold (empty cache)', fig(core.goBuild.coldS, 's')),
      ...row(`unik push go-http, warm${quiet ? ` (${quiet.slice(2)})` : ''}`, fig(u.buildWarmS, 's'), 'go build, warm', fig(core.goBuild.warmS, 's')),
    );
  }
  for (const l of langs) {
    S.boot.push(...row(`unik ${l.example}: run → first HTTP 200, restored (languages run)`, fig(l.bootS, 's')));
    S.size.push(...row(`unik ${l.example} image`, fig(l.imageBytes, 'MB', MB)));
    S.memory.push(...row(`unik ${l.example}: smallest memory that answers (default ${l.defaultMemoryMb} MB)`, fig(l.minMemoryMb, 'MB')));
    S.build.push(...row(`unik push ${l.example}, cold`, fig(l.buildColdS, 's')), ...row(`unik push ${l.example}, warm`, fig(l.buildWarmS, 's')));
  }
  for (const d of found.density?.data.rows ?? []) {
    const s = (k: number) => `${k} unik instance${k === 1 ? '' : 's'}`;
    const p = (k: number) => `${k} podman container${k === 1 ? '' : 's'}`;
    // since issue 19 the reference is podman with as many containers, and memory is PSS; older results had host processes and RSS only
    if (d.unik && d.podman)
      S.density.push(
        ...row(`${s(d.instances)} at once: all answer after${d.unik.allAnswered ? '' : ' (not all answered!)'}`, fig(d.unik.seconds, 's'), p(d.instances), fig(d.podman.seconds, 's')),
        ...row(`${s(d.instances)}: total host PSS`, fig(d.unik.pssMb, 'MB'), p(d.instances), fig(d.podman.pssMb, 'MB')),
        ...row(`${s(d.instances)}: total host RSS`, fig(d.unik.rssMb, 'MB'), p(d.instances), fig(d.podman.rssMb, 'MB')),
      );
    else
      S.density.push(
        ...row(`${s(d.instances)} at once: all answer after${d.allAnswered ? '' : ' (not all answered!)'}`, fig(d.vmSeconds, 's'), `${d.instances} host process${d.instances === 1 ? '' : 'es'}`, fig(d.processSeconds, 's')),
        ...row(`${s(d.instances)}: total host RSS`, fig(d.vmRssMb, 'MB'), `${d.instances} host process${d.instances === 1 ? '' : 'es'}`, fig(d.processRssMb, 'MB')),
      );
  }
  const apiRows: Json[] = found.api?.data.rows ?? [];
  const n = found.api?.data.instances ?? 10;
  for (const a of apiRows) {
    if (a.target.startsWith('podman')) continue;
    // beside podman's listing with as many containers in the same state (created only, or running)
    const state = a.state ?? 'created';
    const ref = apiRows.find((b) => b.target.startsWith('podman') && b.connections === a.connections && (b.state ?? 'created') === state);
    const refName = ref ? `${ref.target}, ${n} ${state} containers, ${ref.connections} connections` : undefined;
    const name = `${a.target}, ${n} ${state} instances, ${a.connections} connections`;
    S.api.push(
      ...row(`${name}: throughput`, fig(a.reqPerSec, 'req/s'), refName, ref ? fig(ref.reqPerSec, 'req/s') : undefined),
      // autocannon counts whole milliseconds: a p50 of 0 is "under 1 ms", and its ratio a bound
      ...row(`${name}: p50 latency`, fig(a.p50ms, 'ms'), refName, ref ? fig(ref.p50ms, 'ms') : undefined, a.p50ms === 0 ? 'under 1 ms, the resolution of autocannon\'s latencies' : undefined),
      ...row(`${name}: p99 latency`, fig(a.p99ms, 'ms'), refName, ref ? fig(ref.p99ms, 'ms') : undefined),
    );
  }
  const h = found.hub?.data;
  if (h) {
    S.hub.push(
      ...row(`unik hub push (${(h.imageBytes * MB).toFixed(0)} MB image)`, fig(h.stats?.pushS ?? h.pushS, 's'), 'skopeo copy (push)', fig(h.stats?.skopeoPushS ?? h.skopeoPushS, 's')),
      ...row('unik hub pull', fig(h.stats?.pullS ?? h.pullS, 's'), 'skopeo copy (pull)', fig(h.stats?.skopeoPullS ?? h.skopeoPullS, 's')),
      ...row('unik hub first push (packs the blobs)', fig(h.firstPushS, 's')),
    );
  }
  const v = found.volumes?.data;
  if (v) {
    // the reference is the daemon's own makeFilesystem (older results: the bare tools)
    const own = !!v.reference;
    S.volumes.push(
      ...row('POST /volumes, empty 1 GiB ext4', fig(v.emptyGiB, 'ms'), own ? "the daemon's makeFilesystem alone (sparse file + its mkfs.ext4 argv)" : 'truncate + mkfs.ext4 (bare tools)', fig(v.mkfsEmptyGiB, 'ms')),
      ...row('POST /volumes from 100 MB of files (a tar upload)', fig(v.from100MB, 'ms'), own ? "the daemon's makeFilesystem alone (its mkfs.ext4 -d argv, its size)" : 'mkfs.ext4 -d (bare tools)', fig(v.mkfsFrom100MB, 'ms')),
      ...(v.unpackMkfsFrom100MB ? row('POST /volumes from 100 MB of files (a tar upload)', fig(v.from100MB, 'ms'), "the daemon's unpack of the tar + makeFilesystem, without the API", fig(v.unpackMkfsFrom100MB, 'ms')) : []),
    );
  }
  return S;
}

/**
 * The aims bench/core.ts measures (bench/README.md, "Aims"), from its result: core.ts writes them
 * into its result; for an older core result without them the report derives them here.
 */
export function coreAims(r: {
  unik: { bootS?: Stats; coldBootS?: Stats; imageBytes: number; minMemoryMb: number };
  conventionalVm: { bootS?: Stats; restoreS?: Stats; diskAllocatedBytes?: number } | { skipped: string };
}): Aim[] {
  const u = r.unik;
  const vm = 'skipped' in r.conventionalVm ? undefined : r.conventionalVm;
  const times = (a?: Stats, b?: Stats) => (a && b ? b.median / a.median : null);
  const atLeast = (x: Omit<Aim, 'met' | 'target'>, min: number): Aim => ({ ...x, target: `≥ ${min}×`, met: x.value === null ? null : x.value >= min });
  return [
    aimAtMost({ id: 'api-run', aim: '`POST /instances/run` → first HTTP 200 of go-http (the API path, restored from the boot snapshot)', value: u.bootS?.median ?? null, unit: 's', detail: u.bootS && `median of ${u.bootS.runs}, ${u.bootS.min.toFixed(3)}–${u.bootS.max.toFixed(3)}` }, 0.25),
    aimAtMost({ id: 'push1-boot', aim: 'first push: `run` → first HTTP 200 of go-http', value: u.bootS?.median ?? null, unit: 's' }, 0.35),
    aimAtMost({ id: 'push1-image', aim: 'first push: go-http image (kernel + initramfs)', value: u.imageBytes / 1e6, unit: 'MB' }, 3.5),
    aimAtMost({ id: 'push1-memory', aim: 'first push: go-http answers with this little memory', value: u.minMemoryMb, unit: 'MB', detail: 'the smallest MemoryMb that answered, bisected in 8 MB steps' }, 24),
    atLeast({ id: 'push1-boot-vs-vm-restore', aim: 'first push: boot faster than the conventional VM (restores)', value: times(u.bootS, vm?.restoreS), unit: '×', compares: 'conventional VM restored from its own QEMU snapshot ÷ unik restored from its boot snapshot, medians' }, 10),
    atLeast({ id: 'push1-boot-vs-vm-cold', aim: 'first push: boot faster than the conventional VM (cold boots)', value: times(u.coldBootS, vm?.bootS), unit: '×', compares: 'conventional VM cold boot ÷ unik cold boot (UNIK_SNAPSHOTS=0), medians' }, 10),
    atLeast({ id: 'push1-size-vs-vm', aim: 'first push: smaller than the conventional VM', value: vm?.diskAllocatedBytes ? vm.diskAllocatedBytes / u.imageBytes : null, unit: '×', compares: "conventional VM disk (allocated bytes) ÷ unik image" }, 50),
  ];
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const cell = (f: Figure) => (f.runs > 1 ? `${num(f.median)} ${f.unit} (${num(f.min)}–${num(f.max)}, n=${f.runs})` : `${num(f.median)} ${f.unit}`);
const ratioCell = (r: Row) =>
  r.ratio === undefined ? '' : r.ratio === 0 ? `below 1/${num(r.reference!.median)} (unik's figure rounds to 0)` : r.ratio < 1 ? `${r.ratio.toFixed(3)} = 1/${(1 / r.ratio).toFixed(1)}` : `${r.ratio.toFixed(2)}×`;

/**
 * The Markdown of a report: the aims table, the machine, then one table per section. `readme`:
 * the form that goes between the README's markers, under its "## Performance" heading (no title,
 * headings one level down, the chart's path from the repository's root).
 */
export function markdown(sections: Record<Section, Row[]>, aimRows: AimRow[], m: HostInfo & { accel?: string; podman?: string }, date: string, svgName: string, sources: string[], readme = false): string {
  const h = readme ? '####' : '##';
  const out: string[] = [];
  if (!readme) out.push(`# unik benchmark — ${date.slice(0, 10)}, ${m.host}`, '');
  const own = aimRows.filter((a) => AIMS.some((x) => x.id === a.id));
  const other = aimRows.filter((a) => !AIMS.some((x) => x.id === a.id));
  out.push(`${h} Aims`, '', 'Issue 19 (performance, second push): the newest result of each module (sources below), medians, each beside its reference where it has one:', '', aimsTable(own), '');
  if (other.length) out.push('Other aims the bench modules check (e.g. the first performance push):', '', aimsTable(other), '');
  out.push(`- machine: ${m.cores} × ${m.cpuModel}, host kernel ${m.kernel}`);
  out.push(`- QEMU ${m.qemu}; accelerator: ${m.accel ?? '?'} (the conventional VM runs on the accelerator unik's own probe picks)`);
  if (m.podman) out.push(`- podman ${m.podman}`);
  out.push(`- date: ${date}; sources: ${sources.join(', ')}`);
  out.push(`- ratio = unik's median ÷ the reference's median, the two named in the row: 1/15 means unik needs 15× less time, bytes or memory (for req/s, above 1 is better)`, '');
  for (const [name, rows] of Object.entries(sections)) {
    if (!rows.length) continue;
    out.push(`${h} ${name}`, '', '| figure | unik | reference | reference value | ratio (unik ÷ reference) |', '|---|---|---|---|---|');
    for (const r of rows) out.push(`| ${r.name}${r.note ? ` (${r.note})` : ''} | ${cell(r)} | ${r.reference?.name ?? ''} | ${r.reference ? cell(r.reference) : ''} | ${ratioCell(r)} |`);
    out.push('');
  }
  out.push(`![boot medians](${readme ? relative(ROOT, join(RESULTS, svgName)) : svgName})`, '');
  return out.join('\n');
}

export interface Bar {
  label: string;
  median: number;
  min: number;
  max: number;
  kind: 'unik' | 'container' | 'vm' | 'process';
}

export function bootBars(found: Found): Bar[] {
  const bars: Bar[] = [];
  const core = found.core?.data;
  const add = (label: string, s: Stats | undefined, kind: Bar['kind']) => s && bars.push({ label, median: s.median, min: s.min, max: s.max, kind });
  if (core) add('unik go-http, restored', core.unik.bootS, 'unik');
  if (core?.unik.coldBootS) add('unik go-http, cold boot', core.unik.coldBootS, 'unik');
  for (const l of found.languages?.data.rows ?? []) if (!(core && l.example === 'go-http')) add(`unik ${l.example}`, l.bootS, 'unik');
  if (core) {
    add('container (podman) go-http', core.container.bootS, 'container');
    if (!core.conventionalVm.skipped) add('conventional VM, restored', core.conventionalVm.restoreS, 'vm');
    if (!core.conventionalVm.skipped) add('conventional VM, cold boot', core.conventionalVm.bootS, 'vm');
    add('host process go-http', core.process.bootS, 'process');
  }
  return bars;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A horizontal bar chart of boot medians (whiskers min–max), log scale when they span > 20×. */
export function svg(bars: Bar[], title: string): string {
  const W = 760, left = 210, right = 90, top = 46, bh = 22, gap = 8;
  const H = top + bars.length * (bh + gap) + 40;
  const vals = bars.flatMap((b) => [b.min, b.max, b.median]).filter((v) => v > 0);
  const lo = Math.min(...vals), hi = Math.max(...vals);
  const log = hi / lo > 20;
  const plotW = W - left - right;
  let x: (v: number) => number;
  const ticks: number[] = [];
  if (log) {
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    x = (v) => left + ((Math.log10(Math.max(v, 10 ** a)) - a) / (b - a || 1)) * plotW;
    for (let e = a; e <= b; e++) ticks.push(10 ** e);
  } else {
    const step = 10 ** Math.floor(Math.log10(hi)) / (hi / 10 ** Math.floor(Math.log10(hi)) < 3 ? 2 : 1);
    const end = Math.ceil(hi / step) * step;
    x = (v) => left + (v / end) * plotW;
    for (let t = 0; t <= end + 1e-9; t += step) ticks.push(t);
  }
  const color = { unik: '#2b6cb0', container: '#dd6b20', vm: '#718096', process: '#38a169' };
  const o: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="#fff"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`, `<text x="${W / 2}" y="36" text-anchor="middle" fill="#555">start → first HTTP 200, seconds (median; whiskers min–max${log ? '; log scale' : ''})</text>`];
  const axisY = top + bars.length * (bh + gap);
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    o.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${axisY}" stroke="#e2e8f0"/>`, `<text x="${tx}" y="${axisY + 16}" text-anchor="middle" fill="#555">${t >= 1 ? t.toFixed(0) : String(Number(t.toPrecision(2)))}</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * (bh + gap);
    const x0 = log ? left : x(0);
    o.push(`<text x="${left - 8}" y="${y + bh / 2 + 4}" text-anchor="end">${esc(b.label)}</text>`);
    o.push(`<rect x="${x0}" y="${y}" width="${Math.max(1, x(b.median) - x0).toFixed(1)}" height="${bh}" fill="${color[b.kind]}"/>`);
    if (b.max > b.min) o.push(`<line x1="${x(b.min).toFixed(1)}" y1="${y + bh / 2}" x2="${x(b.max).toFixed(1)}" y2="${y + bh / 2}" stroke="#1a202c"/>`, `<line x1="${x(b.min).toFixed(1)}" y1="${y + 5}" x2="${x(b.min).toFixed(1)}" y2="${y + bh - 5}" stroke="#1a202c"/>`, `<line x1="${x(b.max).toFixed(1)}" y1="${y + 5}" x2="${x(b.max).toFixed(1)}" y2="${y + bh - 5}" stroke="#1a202c"/>`);
    o.push(`<text x="${(Math.max(x(b.median), x(b.max)) + 6).toFixed(1)}" y="${y + bh / 2 + 4}">${num(b.median)} s</text>`);
  });
  o.push(`<line x1="${left}" y1="${axisY}" x2="${W - right}" y2="${axisY}" stroke="#4a5568"/>`, '</svg>', '');
  return o.join('\n');
}

// run as a script: gather, write, print
if (process.argv[1] && /report\.js$/.test(process.argv[1])) {
  const found = latestResults();
  if (!found.core && !found.languages) {
    console.error(`report: no bench results for host ${hostname()} in ${RESULTS}; run the bench first`);
    process.exit(1);
  }
  const sections = collect(found);
  const machine = { ...hostInfo(), ...(found.core?.data.machine ?? {}) };
  const date = new Date().toISOString();
  const base = `${date.slice(0, 10)}-${hostname()}`;
  // the files read: the modules with sections here, and any other that reports aims
  const sources = Object.entries(found).filter(([m, f]) => (MODULES as readonly string[]).includes(m) || f?.data.aims).map(([, f]) => f!.file);
  mkdirSync(RESULTS, { recursive: true });
  const aimRows = aims(found);
  const unified = { date, host: hostname(), machine, smoke: Object.values(found).some((f) => f!.data.smoke), sources, aims: aimRows, sections };
  writeFileSync(join(RESULTS, `${base}.json`), JSON.stringify(unified, null, 2) + '\n');
  const md = markdown(sections, aimRows, machine, date, `${base}.svg`, sources);
  writeFileSync(join(RESULTS, `${base}.md`), md);
  // the README's figures are this run's (writeReadmeBlock does nothing in smoke mode)
  writeReadmeBlock('bench', markdown(sections, aimRows, machine, date, `${base}.svg`, sources, true));
  writeFileSync(join(RESULTS, `${base}.svg`), svg(bootBars(found), `go-http and the language examples, ${machine.cores} × ${machine.cpuModel}, ${/TCG|tcg/.test(machine.accel ?? '') ? 'TCG' : 'KVM'}`));
  console.log(md);
  console.log(`written: ${relative(process.cwd(), join(RESULTS, base))}.{json,md,svg}${SMOKE ? '' : ' and README.md (bench block)'}`);
}
