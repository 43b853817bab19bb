// The invariants checked after every restart of a killed daemon (and after a supervisor kill),
// each with its own counter. Every check compares what the API says with what is really there:
// files under the home, QEMU processes and listening ports in /proc. A finding may be a moment
// early (the daemon is still sweeping, a VM is still booting), so each has a grace period and
// settle() polls until every finding has outlived its grace or gone.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CrashDaemon } from './daemon.js';
import { ancestors, describe, listensOnLoopback, optionOf, qemusOf, socketHolders, tcpListeners, type Proc } from './procs.js';

export const COUNTERS = ['lostRecords', 'phantomRecords', 'leakedQemu', 'leakedPorts', 'orphanFiles', 'wrongState', 'daemonFailedToRestart', 'failedTrials'] as const;
export type Counter = (typeof COUNTERS)[number];
export type Counters = Record<Counter, number>;

export function zeroCounters(): Counters {
  return Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counters;
}

export interface Violation {
  counter: Counter;
  /** the thing it is about (a pid, a path, a record): one thing is counted once per run */
  key: string;
  detail: string;
}

interface Finding extends Violation {
  /** how long after the restart this may still be a passing state */
  graceMs: number;
}

/** What the daemon acknowledged (a 2xx) and so must hold after every later restart. */
export interface Ledger {
  /** name → id (the ids come from the acknowledgements) */
  images: Map<string, string>;
  instances: Map<string, string>;
  volumes: Map<string, string>;
  /** instances whose removal was acknowledged: name → id */
  removed: Map<string, string>;
}

export function emptyLedger(): Ledger {
  return { images: new Map(), instances: new Map(), volumes: new Map(), removed: new Map() };
}

/** What one trial's acknowledged operation, or its supervisor kill, must have left. */
export type Expectation =
  | { kind: 'stopped'; name: string }
  | { kind: 'started'; name: string }
  | { kind: 'supervisorKilled'; name: string; id: string; supervisorPid: number; qemuPid?: number };

export interface CheckInput {
  home: string;
  daemon: CrashDaemon;
  ledger: Ledger;
  expect: Expectation[];
  /** host ports trials have published */
  ports: Set<number>;
}

export interface Graces {
  /** for findings the daemon may still be putting right: sweeps, adoption (default 5 s) */
  settleMs: number;
  /** for records acknowledged but missing or present after removal (default 2 s) */
  recordMs: number;
  /** how long a pending instance with a live VM may take to become running (default 65 s) */
  pendingMs: number;
}

export const DEFAULT_GRACES: Graces = { settleMs: 5000, recordMs: 2000, pendingMs: 65_000 };

interface ApiInstance {
  Id: string;
  Name: string;
  State: string;
  Pid: number | null;
  ImageId: string;
  Error?: string;
  Ports?: { HostIp?: string; HostPort: number }[];
}
interface ApiImage {
  Id: string;
  Name: string;
}
interface ApiVolume {
  Id: string;
  Name: string;
}

const LIVE = new Set(['running', 'pending']);
/** an instance's shown state, with its error if it has one */
const shown = (i: ApiInstance) => `${i.State}${i.Error ? ` (error: ${i.Error.slice(0, 200)})` : ''}`;

async function list<T>(daemon: CrashDaemon, path: string): Promise<T[]> {
  const r = await daemon.api('GET', path, { timeoutMs: 30_000 });
  if (r.status !== 200 || !Array.isArray(r.json)) throw new Error(`GET ${path} answered ${r.status}: ${r.text.slice(0, 300)}`);
  return r.json as T[];
}

/** One look at everything. Throws if the API cannot be read. */
export async function checkOnce(input: CheckInput, graces: Graces = DEFAULT_GRACES): Promise<Finding[]> {
  const { home, daemon, ledger } = input;
  const instances = await list<ApiInstance>(daemon, '/instances');
  const images = await list<ApiImage>(daemon, '/images');
  const volumes = await list<ApiVolume>(daemon, '/volumes');
  const daemonPid = daemon.pid;
  const qemus = qemusOf(home);
  const found = new Map<string, Finding>();
  const add = (f: Finding) => {
    if (!found.has(f.key)) found.set(f.key, f);
  };
  const byName = new Map(instances.map((i) => [i.Name, i]));
  const byId = new Map(instances.map((i) => [i.Id, i]));

  // the VMs of an instance: QEMUs naming its folder, or (failing that) its name
  const vmsOf = (i: { Id: string; Name: string }): Proc[] =>
    qemus.filter((q) => q.argv.some((a) => a.includes(join(home, 'instances', i.Id) + '/')) || optionOf(q.argv, '-name') === `unik-${i.Name}`);
  const instanceIdIn = (q: Proc): string | undefined => {
    const prefix = join(home, 'instances') + '/';
    for (const a of q.argv) {
      const at = a.indexOf(prefix);
      if (at >= 0) return a.slice(at + prefix.length).split('/')[0];
    }
    return undefined;
  };

  // --- lostRecords: acknowledged effects that are gone
  for (const [name, id] of ledger.images) {
    const img = images.find((i) => i.Name === name);
    if (!img) add({ counter: 'lostRecords', key: `lost:image:${name}`, detail: `image ${name} (${id.slice(0, 12) || 'id unknown'}) was acknowledged but is not listed`, graceMs: graces.recordMs });
    else if (id && img.Id !== id) add({ counter: 'lostRecords', key: `lost:image:${name}`, detail: `image ${name} was acknowledged as ${id.slice(0, 12)} but is listed as ${img.Id.slice(0, 12)}`, graceMs: graces.recordMs });
  }
  for (const [name, id] of ledger.instances) {
    const inst = byName.get(name);
    if (!inst) add({ counter: 'lostRecords', key: `lost:instance:${name}`, detail: `instance ${name} (${id.slice(0, 12) || 'id unknown'}) was acknowledged but is not listed`, graceMs: graces.recordMs });
    else if (id && inst.Id !== id) add({ counter: 'lostRecords', key: `lost:instance:${name}`, detail: `instance ${name} was acknowledged as ${id.slice(0, 12)} but is listed as ${inst.Id.slice(0, 12)}`, graceMs: graces.recordMs });
  }
  for (const [name, id] of ledger.volumes) {
    const vol = volumes.find((v) => v.Name === name);
    if (!vol) add({ counter: 'lostRecords', key: `lost:volume:${name}`, detail: `volume ${name} (${id.slice(0, 12) || 'id unknown'}) was acknowledged but is not listed`, graceMs: graces.recordMs });
  }
  for (const e of input.expect) {
    const inst = byName.get(e.name);
    if (!inst) continue; // a missing record is reported above
    if (e.kind === 'stopped' && LIVE.has(inst.State))
      add({ counter: 'lostRecords', key: `lost:stop:${inst.Id}`, detail: `the stop of ${e.name} was acknowledged, but it is shown ${shown(inst)}`, graceMs: graces.recordMs });
    if (e.kind === 'started' && !LIVE.has(inst.State))
      add({ counter: 'lostRecords', key: `lost:start:${inst.Id}`, detail: `the start of ${e.name} was acknowledged, but it is shown ${shown(inst)}`, graceMs: graces.recordMs });
  }

  // --- phantomRecords: records whose files or parents are gone, removals that came back
  for (const [name, id] of ledger.removed) {
    const back = byName.get(name) ?? byId.get(id);
    if (back) add({ counter: 'phantomRecords', key: `phantom:removed:${name}`, detail: `the removal of ${name} was acknowledged, but it is listed again (${back.State})`, graceMs: graces.recordMs });
  }
  for (const img of images) {
    const dir = join(home, 'images', img.Id);
    let files: string[] = [];
    try {
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernel?: { file?: string }; root?: { file?: string } };
      files = [m.kernel?.file ?? 'kernel', m.root?.file ?? 'root.cpio'];
    } catch {
      add({ counter: 'phantomRecords', key: `phantom:image:${img.Id}`, detail: `image ${img.Name}: ${relative(home, join(dir, 'manifest.json'))} is missing or unreadable`, graceMs: graces.recordMs });
      continue;
    }
    const missing = files.filter((f) => !existsSync(join(dir, f)));
    if (missing.length) add({ counter: 'phantomRecords', key: `phantom:image:${img.Id}`, detail: `image ${img.Name}: ${missing.map((f) => relative(home, join(dir, f))).join(', ')} missing`, graceMs: graces.recordMs });
  }
  for (const v of volumes) {
    const disk = join(home, 'volumes', v.Id, 'disk.img');
    if (!existsSync(disk)) add({ counter: 'phantomRecords', key: `phantom:volume:${v.Id}`, detail: `volume ${v.Name}: ${relative(home, disk)} is missing`, graceMs: graces.recordMs });
  }
  const imageIds = new Set(images.map((i) => i.Id));
  for (const i of instances)
    if (!imageIds.has(i.ImageId)) add({ counter: 'phantomRecords', key: `phantom:instance:${i.Id}`, detail: `instance ${i.Name} (${i.State}) names image ${i.ImageId.slice(0, 12)}, which is not listed`, graceMs: graces.recordMs });

  // --- leakedQemu: a QEMU of this home that no running or pending instance accounts for
  const claimed = new Map<string, Proc>(); // instance id → the QEMU that counts as its VM
  for (const q of qemus) {
    const name = optionOf(q.argv, '-name') ?? '';
    const mine = daemonPid !== undefined && ancestors(q.pid).includes(daemonPid);
    if (name.startsWith('unik-template-')) {
      if (!mine) add({ counter: 'leakedQemu', key: `qemu:${q.pid}`, detail: `snapshot template ${describe(q)} outlived its daemon (daemon now ${daemonPid ?? 'down'})`, graceMs: graces.settleMs });
      continue;
    }
    const id = instanceIdIn(q);
    const owner = (id ? byId.get(id) : undefined) ?? instances.find((i) => name === `unik-${i.Name}`);
    if (!owner) {
      if (!id && !name) {
        // no instance folder and no instance name: the daemon's own short-lived work (its
        // accelerator and confinement probes), legitimate only while that daemon lives
        if (!mine) add({ counter: 'leakedQemu', key: `qemu:${q.pid}`, detail: `${describe(q)}, started by a daemon of this home for no instance (a probe: ${q.argv.slice(1, 5).join(' ')} …), outlived it (daemon now ${daemonPid ?? 'down'})`, graceMs: graces.settleMs });
        continue;
      }
      add({ counter: 'leakedQemu', key: `qemu:${q.pid}`, detail: `${describe(q)} belongs to no instance record${id ? ` (its folder names ${id.slice(0, 12)})` : ''}`, graceMs: graces.settleMs });
      continue;
    }
    if (!LIVE.has(owner.State)) {
      add({ counter: 'leakedQemu', key: `qemu:${q.pid}`, detail: `${describe(q)} is alive, but its instance ${owner.Name} is shown ${shown(owner)}`, graceMs: graces.settleMs });
      continue;
    }
    const prev = claimed.get(owner.Id);
    if (!prev) {
      claimed.set(owner.Id, q);
      continue;
    }
    // two VMs for one instance: the one the record names is its VM, the other a leak
    const [keep, extra] = q.pid === owner.Pid ? [q, prev] : [prev, q];
    claimed.set(owner.Id, keep);
    add({ counter: 'leakedQemu', key: `qemu:${extra.pid}`, detail: `${describe(extra)} is a second VM of ${owner.Name} (its VM is pid ${keep.pid})`, graceMs: graces.settleMs });
  }

  // --- wrongState: the shown state against the VM
  for (const i of instances) {
    const vms = vmsOf(i);
    if (LIVE.has(i.State) && vms.length === 0)
      add({ counter: 'wrongState', key: `state:${i.Id}`, detail: `instance ${i.Name} is shown ${i.State} (pid ${i.Pid}), but no QEMU of it is alive`, graceMs: graces.settleMs });
    else if (!LIVE.has(i.State) && vms.length > 0)
      add({ counter: 'wrongState', key: `state:${i.Id}`, detail: `instance ${i.Name} is shown ${shown(i)}, but its QEMU ${vms.map((v) => v.pid).join(', ')} is alive`, graceMs: graces.settleMs });
    else if (i.State === 'pending')
      add({ counter: 'wrongState', key: `state:${i.Id}`, detail: `instance ${i.Name} is still pending ${Math.round(graces.pendingMs / 1000)} s after the restart (its VM ${vms.map((v) => v.pid).join(', ')} is alive)`, graceMs: graces.pendingMs });
  }
  for (const e of input.expect) {
    if (e.kind !== 'supervisorKilled') continue;
    const inst = byId.get(e.id);
    const vms = qemus.filter((q) => q.pid === e.qemuPid || (inst ? vmsOf(inst).includes(q) : false));
    for (const q of vms) add({ counter: 'leakedQemu', key: `qemu:${q.pid}`, detail: `${describe(q)} outlived its killed supervisor (pid ${e.supervisorPid})`, graceMs: 0 });
    if (inst && LIVE.has(inst.State))
      add({ counter: 'wrongState', key: `state:${inst.Id}`, detail: `instance ${inst.Name} is shown ${inst.State} after its supervisor (pid ${e.supervisorPid}) was killed`, graceMs: 0 });
  }

  // --- leakedPorts: a trial's host port still listening with no live instance publishing it
  const published = new Set(instances.filter((i) => LIVE.has(i.State)).flatMap((i) => (i.Ports ?? []).map((p) => p.HostPort)));
  const listening = tcpListeners().filter((l) => input.ports.has(l.port) && listensOnLoopback(l));
  for (const l of listening) {
    if (published.has(l.port)) continue;
    const holders = socketHolders(l.inode);
    // a process that has nothing to do with this home took the port meanwhile: not ours
    if (holders.length && holders.every((h) => !h.argv.some((a) => a.includes(home)))) continue;
    add({ counter: 'leakedPorts', key: `port:${l.port}`, detail: `${l.address}:${l.port} is listening (${holders.map(describe).join('; ') || 'holder unknown'}), but no running instance publishes it`, graceMs: graces.settleMs });
  }

  // --- orphanFiles
  const orphan = (path: string, why: string) => add({ counter: 'orphanFiles', key: `file:${path}`, detail: `${relative(home, path)}: ${why}`, graceMs: graces.settleMs });
  const reported = new Set<string>();
  const entries = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  const known: [string, Set<string>][] = [
    ['instances', new Set(instances.map((i) => i.Id))],
    ['images', imageIds],
    ['volumes', new Set(volumes.map((v) => v.Id))],
  ];
  for (const [dir, ids] of known)
    for (const e of entries(join(home, dir)))
      if (!ids.has(e)) {
        orphan(join(home, dir, e), `no ${dir.slice(0, -1)} record has this id`);
        reported.add(join(home, dir, e));
      }
  for (const e of entries(join(home, 'tmp'))) {
    orphan(join(home, 'tmp', e), 'left in tmp/');
    reported.add(join(home, 'tmp', e));
  }
  const liveArgs = qemus.flatMap((q) => q.argv).join('\n');
  for (const e of entries(join(home, 'sock'))) {
    const path = join(home, 'sock', e);
    const prefix = /^([0-9a-f]{16})/.exec(e)?.[1];
    if (prefix) {
      if (!instances.some((i) => i.Id.startsWith(prefix))) orphan(path, 'a socket of no instance');
    } else if (!liveArgs.includes(path)) {
      orphan(path, e.startsWith('tpl-') ? 'a snapshot template socket no live QEMU uses' : 'a socket of no instance');
    }
  }
  // temporary names anywhere: a write that never finished; only the live daemon's own are in progress
  const inProgress = (name: string) => daemonPid !== undefined && (name.includes(`.tmp-${daemonPid}-`) || name.endsWith(`.${daemonPid}.tmp`));
  const walk = (dir: string, depth: number) => {
    for (const e of entries(dir)) {
      const path = join(dir, e);
      if (reported.has(path)) continue;
      if (/\.tmp(-|$)|^\.tmp/.test(e)) {
        if (!inProgress(e)) orphan(path, 'a temporary name left behind');
        continue;
      }
      if (depth < 8) walk(path, depth + 1);
    }
  };
  walk(home, 0);

  return [...found.values()];
}

/**
 * Polls checkOnce until every finding has outlived its grace or gone. A finding seen after its
 * grace is a violation, even if it goes later.
 */
export async function settle(input: CheckInput, graces: Graces = DEFAULT_GRACES): Promise<Violation[]> {
  const t0 = Date.now();
  const violations = new Map<string, Violation>();
  for (;;) {
    const found = await checkOnce(input, graces);
    const waited = Date.now() - t0;
    for (const f of found) if (waited >= f.graceMs && !violations.has(f.key)) violations.set(f.key, { counter: f.counter, key: f.key, detail: f.detail });
    if (found.every((f) => waited >= f.graceMs)) return [...violations.values()];
    await sleep(500);
  }
}
