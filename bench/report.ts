// `node dist/bench/report.js`: gathers the newest result of every bench module for this host
// (bench/results/<date>-<host>-<module>.json) into one results file, bench/results/<date>-<host>.json,
// with the sections boot, size, memory, density, build, api (and hub, volumes): every row has
// median/min/max, unit, and its reference and ratio (value / reference) where one exists. Writes
// the Markdown table (<date>-<host>.md: accelerator, CPU, cores, QEMU version, date) and an SVG
// bar chart of boot medians (<date>-<host>.svg), and prints the table.
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { hostInfo, RESULTS, type HostInfo, type Stats } from './lib.js';

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

const MODULES = ['core', 'languages', 'density', 'api', 'hub', 'volumes'] as const;
type Module = (typeof MODULES)[number];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** The newest file of each module for `host` (by the date in its name, then by its `date` field). */
export function latestResults(host = hostname()): Partial<Record<Module, { file: string; data: Json }>> {
  const found: Partial<Record<Module, { file: string; data: Json }>> = {};
  if (!existsSync(RESULTS)) return found;
  for (const f of readdirSync(RESULTS).sort()) {
    const m = /^(\d{4}-\d{2}-\d{2})-(.+)-([a-z]+)\.json$/.exec(f);
    if (!m || m[2] !== host || !(MODULES as readonly string[]).includes(m[3]!)) continue;
    const data = JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as Json;
    const mod = m[3] as Module;
    const prev = found[mod];
    if (!prev || String(data.date ?? '') >= String(prev.data.date ?? '')) found[mod] = { file: f, data };
  }
  return found;
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

export function collect(found: ReturnType<typeof latestResults>): Record<Section, Row[]> {
  const S: Record<Section, Row[]> = { boot: [], size: [], memory: [], density: [], build: [], api: [], hub: [], volumes: [] };
  const core = found.core?.data;
  const langs: Json[] = found.languages?.data.rows ?? [];
  const MB = 1e-6;
  if (core) {
    const u = core.unik, vm = core.conventionalVm, c = core.container, p = core.process;
    const vmOk = vm && !vm.skipped;
    const VM = 'conventional VM (Debian cloud kernel, systemd)';
    S.boot.push(
      ...row('unik go-http: run → first HTTP 200', fig(u.bootS, 's'), VM, vmOk ? fig(vm.bootS, 's') : undefined, vmOk ? undefined : `conventional VM: ${vm?.skipped}`),
      ...row('unik go-http: run → first HTTP 200', fig(u.bootS, 's'), 'podman container: run -d → first HTTP 200', fig(c.bootS, 's')),
      ...row('unik go-http: run → first HTTP 200', fig(u.bootS, 's'), 'host process: spawn → first HTTP 200', fig(p.bootS, 's')),
      ...(u.coldBootS ? row('unik go-http, cold boot (UNIK_SNAPSHOTS=0): run → first HTTP 200', fig(u.coldBootS, 's'), VM, vmOk ? fig(vm.bootS, 's') : undefined) : []),
    );
    const vmSize = vmOk ? one(vm.diskAllocatedBytes * MB, 'MB') : undefined;
    S.size.push(
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'conventional VM disk, allocated (raw ext4, kernel and initrd in /boot)', vmSize),
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'podman container image', fig(c.imageBytes, 'MB', MB)),
      ...row('unik go-http image (kernel + initramfs)', fig(u.imageBytes, 'MB', MB), 'the static Go binary alone', fig(p.binaryBytes, 'MB', MB)),
      ...row('unik kernel', fig(u.kernelBytes, 'MB', MB), vmOk ? `conventional VM kernel + initrd (${vm.kernel})` : undefined, vmOk ? one((vm.kernelBytes + vm.initrdBytes) * MB, 'MB') : undefined),
      ...row('unik initramfs (init + app)', fig(u.rootBytes, 'MB', MB), vmOk ? 'conventional VM root tree (files)' : undefined, vmOk ? one(vm.rootTreeBytes * MB, 'MB') : undefined),
    );
    S.memory.push(
      ...row('unik go-http: smallest memory that answers', fig(u.minMemoryMb, 'MB'), vmOk && vm.minMemoryMb ? 'conventional VM: smallest -m that answers' : undefined, vmOk && vm.minMemoryMb ? one(vm.minMemoryMb, 'MB') : undefined),
      ...row('unik go-http: host RSS of the VM process', fig(u.rssMb, 'MB'), vmOk ? `conventional VM: host RSS of QEMU (-m ${vm.memoryMb})` : undefined, vmOk ? fig(vm.rssMb, 'MB') : undefined),
      ...row('unik go-http: host RSS of the VM process', fig(u.rssMb, 'MB'), 'podman container: RSS of conmon + app', fig(c.rssMb, 'MB')),
      ...row('unik go-http: host RSS of the VM process', fig(u.rssMb, 'MB'), 'host process RSS', fig(p.rssMb, 'MB')),
    );
    S.build.push(
      ...row('unik push go-http, cold (empty Go cache)', fig(u.buildColdS, 's'), 'go build, cold', fig(core.goBuild.coldS, 's')),
      ...row('unik push go-http, warm', fig(u.buildWarmS, 's'), 'go build, warm', fig(core.goBuild.warmS, 's')),
    );
  }
  for (const l of langs) {
    S.boot.push(...row(`unik ${l.example}: run → first HTTP 200 (languages run)`, fig(l.bootS, 's')));
    S.size.push(...row(`unik ${l.example} image`, fig(l.imageBytes, 'MB', MB)));
    S.memory.push(...row(`unik ${l.example}: smallest memory that answers (default ${l.defaultMemoryMb} MB)`, fig(l.minMemoryMb, 'MB')));
    S.build.push(...row(`unik push ${l.example}, cold`, fig(l.buildColdS, 's')), ...row(`unik push ${l.example}, warm`, fig(l.buildWarmS, 's')));
  }
  for (const d of found.density?.data.rows ?? []) {
    S.density.push(
      ...row(`${d.instances} unik instance${d.instances === 1 ? '' : 's'} at once: all answer after${d.allAnswered ? '' : ' (not all answered!)'}`, fig(d.vmSeconds, 's'), `${d.instances} host process${d.instances === 1 ? '' : 'es'}`, fig(d.processSeconds, 's')),
      ...row(`${d.instances} unik instance${d.instances === 1 ? '' : 's'}: total host RSS`, fig(d.vmRssMb, 'MB'), `${d.instances} host process${d.instances === 1 ? '' : 'es'}`, fig(d.processRssMb, 'MB')),
    );
  }
  const apiRows: Json[] = found.api?.data.rows ?? [];
  for (const a of apiRows) {
    if (a.target.startsWith('podman')) continue;
    const ref = apiRows.find((b) => b.target.startsWith('podman') && b.connections === a.connections);
    const refName = ref ? `${ref.target}, ${ref.connections} connections` : undefined;
    S.api.push(
      ...row(`${a.target}, ${a.connections} connections: throughput`, fig(a.reqPerSec, 'req/s'), refName, ref ? fig(ref.reqPerSec, 'req/s') : undefined),
      ...row(`${a.target}, ${a.connections} connections: p50 latency`, fig(a.p50ms, 'ms'), refName, ref ? fig(ref.p50ms, 'ms') : undefined),
      ...row(`${a.target}, ${a.connections} connections: p99 latency`, fig(a.p99ms, 'ms'), refName, ref ? fig(ref.p99ms, 'ms') : undefined),
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
    S.volumes.push(
      ...row('create-volume, empty 1 GiB', fig(v.emptyGiB, 'ms'), 'mkfs.ext4 alone', fig(v.mkfsEmptyGiB, 'ms')),
      ...row('create-volume from 100 MB of files', fig(v.from100MB, 'ms'), 'mkfs.ext4 -d alone', fig(v.mkfsFrom100MB, 'ms')),
    );
  }
  return S;
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const cell = (f: Figure) => (f.runs > 1 ? `${num(f.median)} ${f.unit} (${num(f.min)}–${num(f.max)}, n=${f.runs})` : `${num(f.median)} ${f.unit}`);
const ratioCell = (r: Row) => (r.ratio === undefined ? '' : r.ratio < 1 ? `${r.ratio.toFixed(3)} = 1/${(1 / r.ratio).toFixed(1)}` : `${r.ratio.toFixed(2)}×`);

export function markdown(sections: Record<Section, Row[]>, m: HostInfo & { accel?: string; podman?: string }, date: string, svgName: string, sources: string[]): string {
  const out: string[] = [];
  out.push(`# unik benchmark — ${date.slice(0, 10)}, ${m.host}`, '');
  out.push(`- machine: ${m.cores} × ${m.cpuModel}, host kernel ${m.kernel}`);
  out.push(`- QEMU ${m.qemu}; accelerator: ${m.accel ?? '?'}`);
  if (m.podman) out.push(`- podman ${m.podman}`);
  out.push(`- date: ${date}; sources: ${sources.join(', ')}`);
  out.push(`- ratio = unik's median / the reference's median: 1/15 means unik needs 15× less time, bytes or memory (for req/s, above 1 is better)`, '');
  for (const [name, rows] of Object.entries(sections)) {
    if (!rows.length) continue;
    out.push(`## ${name}`, '', '| figure | unik | reference | reference value | ratio |', '|---|---|---|---|---|');
    for (const r of rows) out.push(`| ${r.name}${r.note ? ` (${r.note})` : ''} | ${cell(r)} | ${r.reference?.name ?? ''} | ${r.reference ? cell(r.reference) : ''} | ${ratioCell(r)} |`);
    out.push('');
  }
  out.push(`![boot medians](${svgName})`, '');
  return out.join('\n');
}

export interface Bar {
  label: string;
  median: number;
  min: number;
  max: number;
  kind: 'unik' | 'container' | 'vm' | 'process';
}

export function bootBars(found: ReturnType<typeof latestResults>): Bar[] {
  const bars: Bar[] = [];
  const core = found.core?.data;
  const add = (label: string, s: Stats | undefined, kind: Bar['kind']) => s && bars.push({ label, median: s.median, min: s.min, max: s.max, kind });
  if (core) add('unik go-http', core.unik.bootS, 'unik');
  if (core?.unik.coldBootS) add('unik go-http, cold boot', core.unik.coldBootS, 'unik');
  for (const l of found.languages?.data.rows ?? []) if (!(core && l.example === 'go-http')) add(`unik ${l.example}`, l.bootS, 'unik');
  if (core) {
    add('container (podman) go-http', core.container.bootS, 'container');
    if (!core.conventionalVm.skipped) add('conventional VM go-http', core.conventionalVm.bootS, 'vm');
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
  const sources = Object.values(found).map((f) => f!.file);
  mkdirSync(RESULTS, { recursive: true });
  const unified = { date, host: hostname(), machine, smoke: Object.values(found).some((f) => f!.data.smoke), sources, sections };
  writeFileSync(join(RESULTS, `${base}.json`), JSON.stringify(unified, null, 2) + '\n');
  const md = markdown(sections, machine, date, `${base}.svg`, sources);
  writeFileSync(join(RESULTS, `${base}.md`), md);
  writeFileSync(join(RESULTS, `${base}.svg`), svg(bootBars(found), `go-http and the language examples, ${machine.cores} × ${machine.cpuModel}, ${/TCG|tcg/.test(machine.accel ?? '') ? 'TCG' : 'KVM'}`));
  console.log(md);
  console.log(`written: ${relative(process.cwd(), join(RESULTS, base))}.{json,md,svg}`);
}
