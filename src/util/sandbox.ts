import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildFailed, unavailable } from '../model/errors.js';
import type { HostTool } from '../model/types.js';
import { execFileCollect, type ExecResult } from './exec.js';
import { splitLines } from './lines.js';

// Uploaded code is built by host tools that run the upload's own instructions (a Makefile,
// javac's annotation processors, ldd on its binaries). Each such command runs here: in
// bubblewrap's namespaces (no network, its own pids, a private /tmp, only the system dirs and
// this build's own folders visible), as an unprivileged user with no capabilities, in its own
// memory and pids cgroups (v1 or v2), with a bounded /tmp and under a wall-clock limit. No user
// namespace: as root, bwrap would map only uid 0 into it, and we want the real unprivileged uid
// on the host's files.

export interface SandboxOptions {
  cwd: string;
  /** host folders the command may write, seen at the same paths (the build's own) */
  writable: string[];
  /** host folders it may read, at the same paths (caches, a module cache) */
  readable?: string[];
  /** its whole environment: the daemon's own is never passed in */
  env?: Record<string, string>;
  onLine?: (line: string) => void;
  /** told once per run how it is confined (the build's progress) */
  onNote?: (message: string) => void;
  /** defaults: UNIK_BUILD_TIMEOUT (s, 600), UNIK_BUILD_MEMORY_MB (2048), UNIK_BUILD_PIDS (1024, threads included), UNIK_BUILD_TMP_MB (1024) */
  timeoutSec?: number;
  memoryMb?: number;
  /** at most this many processes (and threads) at once */
  pids?: number;
  /** the size of its private /tmp */
  tmpMb?: number;
  maxOutput?: number;
}

export interface BuildUser {
  uid: number;
  gid: number;
  name: string;
}

/** System directories the sandbox shows read-only, symlinks (merged /usr) kept as symlinks. */
const SYSTEM = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'];
/** What of /etc the tools need: the loader's cache, Debian's alternatives, the JDK's config. No passwd, no shadow, no keys. */
const ETC = ['ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'alternatives', 'localtime', 'java-17-openjdk', 'java-21-openjdk', 'java-11-openjdk'];
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** what confines a build (bubblewrap's namespaces, then setpriv's drop to the build user, prlimit's limits), and their Debian packages */
export const SANDBOX_TOOLS: readonly HostTool[] = [
  { name: 'bwrap', pkg: 'bubblewrap' },
  { name: 'setpriv', pkg: 'util-linux' },
  { name: 'prlimit', pkg: 'util-linux' },
];
/** the user builds run as (scripts/setup.sh makes it) */
export const BUILD_USER = 'unik-build';

export function buildTimeoutSec(): number {
  return positive(process.env.UNIK_BUILD_TIMEOUT, 600);
}
export function buildMemoryMb(): number {
  return positive(process.env.UNIK_BUILD_MEMORY_MB, 2048);
}
export function buildPids(): number {
  return Math.floor(positive(process.env.UNIK_BUILD_PIDS, 1024));
}
export function buildTmpMb(): number {
  return positive(process.env.UNIK_BUILD_TMP_MB, 1024);
}
function positive(v: string | undefined, dflt: number): number {
  const n = Number(v);
  return v && Number.isFinite(n) && n > 0 ? n : dflt;
}

/** The `unik-build` system user if the host has one, else nobody:nogroup. */
export function buildUser(): BuildUser {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === BUILD_USER && f[2] && f[3]) return { uid: Number(f[2]), gid: Number(f[3]), name: BUILD_USER };
    }
  } catch {
    // no passwd: fall through
  }
  return { uid: 65534, gid: 65534, name: 'nobody' };
}

function findOnPath(tool: string): string | undefined {
  for (const dir of (process.env.PATH || SANDBOX_PATH).split(delimiter)) if (dir && existsSync(join(dir, tool))) return join(dir, tool);
  return undefined;
}

/** Gives the build user a build's folders (no symlink followed), so the confined tools can write there. */
export async function handToBuildUser(dirs: string[]): Promise<void> {
  const u = buildUser();
  for (const d of dirs) {
    const r = await execFileCollect('chown', ['-R', '-P', '--no-dereference', `${u.uid}:${u.gid}`, d]);
    if (r.code !== 0) throw new Error(`chown ${d}: ${r.output.trim()}`);
  }
}

/** The bwrap arguments for the filesystem: system dirs read-only, a minimal /etc, a bounded /tmp, and the given folders. */
function mounts(opts: SandboxOptions, tmpMb: number): string[] {
  const a: string[] = [];
  for (const d of SYSTEM) {
    let st;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) a.push('--symlink', readlinkSync(d), d);
    else if (st.isDirectory()) a.push('--ro-bind', d, d);
  }
  a.push('--dir', '/etc');
  for (const f of ETC) a.push('--ro-bind-try', `/etc/${f}`, `/etc/${f}`);
  a.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--size', String(Math.floor(tmpMb * 1024 * 1024)), '--tmpfs', '/tmp');
  // bwrap makes a bind's missing parents 0700 (root's): make them 0755 first, so the build
  // user can reach its folders (they hold nothing else: the sandbox's / is empty)
  const made = new Set(['/', '/tmp', '/etc', '/proc', '/dev', ...SYSTEM]);
  for (const d of [...(opts.readable ?? []), ...opts.writable])
    for (let p = dirname(d); !made.has(p); p = dirname(p)) made.add(p);
  const parents = [...made].filter((p) => !['/', '/tmp', '/etc', '/proc', '/dev', ...SYSTEM].includes(p)).sort((x, y) => x.length - y.length);
  for (const p of parents) a.push('--perms', '0755', '--dir', p);
  for (const d of opts.readable ?? []) a.push('--ro-bind', d, d);
  for (const d of opts.writable) a.push('--bind', d, d);
  a.push('--chdir', opts.cwd);
  return a;
}

/** The limits a run's cgroups enforce. */
export interface CgroupLimits {
  memoryMb: number;
  pids: number;
}

const V1_CONTROLLER = (c: string) => new RegExp(`^\\d+:([^:]*,)?${c}(,[^:]*)?:`);
/** The daemon's own cgroup v2 leaf, when it had to leave its cgroup so that one could have children with controllers. */
const DAEMON_LEAF = 'unik-daemon';

/**
 * A run's own cgroups, under the daemon's: with cgroup v1 a memory and a pids cgroup (each only
 * if it can be made), with a cgroup v2 unified hierarchy one cgroup with both controllers.
 * undefined when none can be made (the run then falls back to prlimit).
 */
export class BuildCgroup {
  private constructor(
    /** every cgroup directory the run is in */
    readonly dirs: string[],
    /** the one that limits memory, and the one that limits processes */
    readonly memoryDir: string | undefined,
    readonly pidsDir: string | undefined,
    readonly v2: boolean,
  ) {}

  static async create(limits: CgroupLimits, root = '/sys/fs/cgroup', selfFile = '/proc/self/cgroup'): Promise<BuildCgroup | undefined> {
    try {
      const self = await readFile(selfFile, 'utf8');
      const name = `unik-build-${randomBytes(6).toString('hex')}`;
      const controllers = await readFile(join(root, 'cgroup.controllers'), 'utf8').catch(() => undefined);
      if (controllers !== undefined && words(controllers).includes('memory')) return await BuildCgroup.createV2(limits, root, self, name);
      const own = (c: string) => {
        const line = self.split('\n').find((l) => V1_CONTROLLER(c).test(l));
        return line ? line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) : undefined;
      };
      const memParent = own('memory');
      const memoryDir =
        memParent !== undefined && existsSync(join(root, 'memory/memory.limit_in_bytes'))
          ? await makeChild(join(root, 'memory', memParent, name), async (dir) => {
              const bytes = String(limits.memoryMb * 1024 * 1024);
              await writeFile(join(dir, 'memory.limit_in_bytes'), bytes);
              // memory + swap at the same limit: a build cannot page its way past it
              await writeFile(join(dir, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined);
            })
          : undefined;
      const pidsParent = own('pids');
      const pidsDir =
        pidsParent !== undefined && existsSync(join(root, 'pids'))
          ? await makeChild(join(root, 'pids', pidsParent, name), (dir) => writeFile(join(dir, 'pids.max'), String(limits.pids)))
          : undefined;
      const dirs = [memoryDir, pidsDir].filter((d): d is string => !!d);
      return dirs.length ? new BuildCgroup(dirs, memoryDir, pidsDir, false) : undefined;
    } catch {
      return undefined;
    }
  }

  /** cgroup v2: a child of the daemon's cgroup with the memory (and pids) controller. */
  private static async createV2(limits: CgroupLimits, root: string, self: string, name: string): Promise<BuildCgroup | undefined> {
    const line = self.split('\n').find((l) => l.startsWith('0::'));
    if (!line) return undefined;
    let parent = join(root, line.slice(3));
    if (basename(parent) === DAEMON_LEAF) parent = dirname(parent);
    await delegate(parent);
    const made = await makeChild(join(parent, name), async (dir) => {
      const have = words(await readFile(join(dir, 'cgroup.controllers'), 'utf8'));
      if (!have.includes('memory')) throw new Error('no memory controller');
      await writeFile(join(dir, 'memory.max'), String(limits.memoryMb * 1024 * 1024));
      await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined); // no paging past it
      if (have.includes('pids')) await writeFile(join(dir, 'pids.max'), String(limits.pids));
    });
    if (!made) return undefined;
    const pids = existsSync(join(made, 'pids.max'));
    return new BuildCgroup([made], made, pids ? made : undefined, true);
  }

  add(pid: number): Promise<void> {
    return Promise.all(this.dirs.map((d) => writeFile(join(d, 'cgroup.procs'), String(pid)))).then(() => undefined);
  }

  /** Did the kernel's OOM killer act in this cgroup? */
  async oomKilled(): Promise<boolean> {
    if (!this.memoryDir) return false;
    if (this.v2) return countOf(await readFile(join(this.memoryDir, 'memory.events'), 'utf8').catch(() => ''), 'oom_kill') > 0;
    const oom = await readFile(join(this.memoryDir, 'memory.oom_control'), 'utf8').catch(() => '');
    const kills = /oom_kill (\d+)/.exec(oom);
    if (kills) return Number(kills[1]) > 0;
    return Number(await readFile(join(this.memoryDir, 'memory.failcnt'), 'utf8').catch(() => '0')) > 0;
  }

  /** Was a fork refused for the process limit? */
  async pidsLimited(): Promise<boolean> {
    if (!this.pidsDir) return false;
    return countOf(await readFile(join(this.pidsDir, 'pids.events'), 'utf8').catch(() => ''), 'max') > 0;
  }

  async killAll(): Promise<void> {
    if (this.v2) await writeFile(join(this.dirs[0]!, 'cgroup.kill'), '1').catch(() => undefined);
    for (const dir of this.dirs) {
      const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      for (const p of pids) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  /** Removes the cgroups once their last process is gone (they die with the sandbox's pid namespace). */
  async remove(): Promise<void> {
    for (const dir of this.dirs) await removeCgroup(dir, () => this.killAll());
  }
}

function words(s: string): string[] {
  return s.split(/\s+/).filter(Boolean);
}
/** The number after `key` in a flat-keyed cgroup file (memory.events, pids.events). */
function countOf(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** mkdir a cgroup and set it up; removed again, and undefined, when that fails. */
async function makeChild(dir: string, setup: (dir: string) => Promise<void>): Promise<string | undefined> {
  try {
    await mkdir(dir);
  } catch {
    return undefined;
  }
  try {
    await setup(dir);
    return dir;
  } catch {
    await removeCgroup(dir, async () => undefined);
    return undefined;
  }
}

async function removeCgroup(dir: string, killAll: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      await killAll();
      await sleep(20);
    }
  }
}

/**
 * cgroup v2: lets the daemon's cgroup give memory and pids to children. A cgroup with
 * processes cannot (EBUSY), so a daemon alone in its cgroup first moves into a leaf of it.
 */
async function delegate(parent: string): Promise<void> {
  const available = words(await readFile(join(parent, 'cgroup.controllers'), 'utf8').catch(() => ''));
  const enable = async () => {
    const on = words(await readFile(join(parent, 'cgroup.subtree_control'), 'utf8').catch(() => ''));
    for (const c of ['memory', 'pids']) if (available.includes(c) && !on.includes(c)) await writeFile(join(parent, 'cgroup.subtree_control'), `+${c}`);
  };
  try {
    await enable();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EBUSY') return;
    const procs = words(await readFile(join(parent, 'cgroup.procs'), 'utf8').catch(() => ''));
    if (procs.length !== 1 || procs[0] !== String(process.pid)) return; // not ours alone: no cgroup, prlimit instead
    const leaf = join(parent, DAEMON_LEAF);
    await mkdir(leaf).catch(() => undefined);
    await writeFile(join(leaf, 'cgroup.procs'), String(process.pid));
    await enable().catch(() => undefined);
  }
}

/**
 * Runs one command confined (see the top of this file) and collects its output, as
 * execFileCollect does. A run past its time limit, or killed for memory, is a clear build error;
 * a host without bwrap answers 503, never an unconfined build.
 */
export async function sandboxed(file: string, args: string[], opts: SandboxOptions): Promise<ExecResult> {
  const bwrap = findOnPath('bwrap');
  if (!bwrap)
    throw unavailable('NO_SANDBOX', 'bubblewrap (bwrap) is not installed on the daemon host, and uploaded code is only ever built inside its sandbox', 'apt-get install bubblewrap (or run `npm run setup`)');
  // the same "not installed" signal as a plain spawn, so callers keep their own hint
  if (!(file.startsWith('/') ? existsSync(file) : SANDBOX_PATH.split(':').some((d) => existsSync(join(d, file)))))
    throw Object.assign(new Error(`${file}: not found`), { code: 'ENOENT' });
  const timeoutSec = opts.timeoutSec ?? buildTimeoutSec();
  const memoryMb = opts.memoryMb ?? buildMemoryMb();
  const pids = opts.pids ?? buildPids();
  const tmpMb = opts.tmpMb ?? buildTmpMb();
  const user = buildUser();
  const cgroup = await BuildCgroup.create({ memoryMb, pids });
  const how = [
    cgroup?.memoryDir ? 'memory cgroup' : 'RLIMIT_AS through prlimit: no memory cgroup could be made',
    cgroup?.pidsDir ? 'pids cgroup' : 'RLIMIT_NPROC through prlimit: no pids cgroup could be made',
  ];
  opts.onNote?.(
    `sandbox: ${file} as ${user.name} (uid ${user.uid}), no network, ${timeoutSec} s, ${memoryMb} MB, ${pids} processes and a ${tmpMb} MB /tmp at most (${how.join('; ')})`,
  );

  const drop = ['setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), '--clear-groups', '--no-new-privs', '--bounding-set=-all', '--inh-caps=-all'];
  const rlimits = [...(cgroup?.memoryDir ? [] : [`--as=${memoryMb * 1024 * 1024}`]), ...(cgroup?.pidsDir ? [] : [`--nproc=${pids}`])];
  const limit = rlimits.length ? ['prlimit', ...rlimits, '--'] : [];
  const bwrapArgs = [
    '--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try',
    '--die-with-parent', '--new-session', '--hostname', 'unik-build',
    ...mounts(opts, tmpMb),
    ...(cgroup ? ['--info-fd', '3', '--block-fd', '4'] : []),
    '--', ...drop, ...limit, file, ...args,
  ];
  const max = opts.maxOutput ?? 256 * 1024;
  const env = { PATH: SANDBOX_PATH, HOME: '/tmp', LANG: 'C.UTF-8', ...opts.env };
  let timedOut = false;
  try {
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(bwrap, bwrapArgs, { env, stdio: ['ignore', 'pipe', 'pipe', ...(cgroup ? (['pipe', 'pipe'] as const) : [])] });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL'); // its child dies with it (--die-with-parent), and the pid namespace with that
        void cgroup?.killAll();
      }, timeoutSec * 1000);
      let output = '';
      const take = (line: string) => {
        output += line + '\n';
        if (output.length > max * 2) output = output.slice(-max);
        opts.onLine?.(line);
      };
      splitLines(child.stdout!, take);
      splitLines(child.stderr!, take);
      if (cgroup) {
        // bwrap says the sandbox's pid, then waits on fd 4: the command starts inside the cgroup
        const info = child.stdio[3] as NodeJS.ReadableStream;
        const release = child.stdio[4] as NodeJS.WritableStream;
        let text = '';
        let placed = false;
        info.on('data', (b: Buffer) => {
          text += b.toString();
          const pid = /"child-pid"\s*:\s*(\d+)/.exec(text)?.[1];
          if (!pid || placed) return;
          placed = true;
          cgroup.add(Number(pid)).then(
            () => release.write('x'),
            (e: Error) => {
              child.kill('SIGKILL');
              reject(new Error(`could not put the build sandbox in its cgroup: ${e.message}`));
            },
          );
        });
        info.on('error', () => undefined);
        (release as NodeJS.WritableStream & { on(e: 'error', f: () => void): void }).on('error', () => undefined);
      }
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, output: output.slice(-max) });
      });
    }).then(async (r) => {
      if (timedOut)
        throw buildFailed('BUILD_TIMEOUT', `the build ran longer than its limit of ${timeoutSec} s and was stopped (${file})`, 'make the build faster, or raise UNIK_BUILD_TIMEOUT (seconds) on the daemon host');
      if (r.code !== 0 && cgroup && (await cgroup.oomKilled()))
        throw buildFailed('BUILD_OUT_OF_MEMORY', `the build used more than its memory limit of ${memoryMb} MB and was killed (${file})`, 'use less memory in the build, or raise UNIK_BUILD_MEMORY_MB on the daemon host');
      if (r.code !== 0 && cgroup && (await cgroup.pidsLimited()))
        throw buildFailed('BUILD_TOO_MANY_PROCESSES', `the build tried to run more than its limit of ${pids} processes at once and was refused (${file})`, 'start fewer processes in the build (make -j, a fork loop?), or raise UNIK_BUILD_PIDS on the daemon host');
      return r;
    });
  } finally {
    await cgroup?.remove();
  }
}
