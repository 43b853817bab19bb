import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildFailed, unavailable } from '../core/errors.js';
import { execFileCollect, type ExecResult } from './exec.js';

// Uploaded code is built by host tools that run the upload's own instructions (a Makefile,
// javac's annotation processors, ldd on its binaries). Each such command runs here: in
// bubblewrap's namespaces (no network, its own pids, a private /tmp, only the system dirs and
// this build's own folders visible), as an unprivileged user with no capabilities, in its own
// memory cgroup and under a wall-clock limit. No user namespace: as root, bwrap would map
// only uid 0 into it, and we want the real unprivileged uid on the host's files.

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
  /** defaults: UNIK_BUILD_TIMEOUT (s, 600), UNIK_BUILD_MEMORY_MB (2048) */
  timeoutSec?: number;
  memoryMb?: number;
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

export function buildTimeoutSec(): number {
  return positive(process.env.UNIK_BUILD_TIMEOUT, 600);
}
export function buildMemoryMb(): number {
  return positive(process.env.UNIK_BUILD_MEMORY_MB, 2048);
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
      if (f[0] === 'unik-build' && f[2] && f[3]) return { uid: Number(f[2]), gid: Number(f[3]), name: 'unik-build' };
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

/** The bwrap arguments for the filesystem: system dirs read-only, a minimal /etc, and the given folders. */
function mounts(opts: SandboxOptions): string[] {
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
  a.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp');
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

/** A memory cgroup (v1) of its own under the daemon's, or undefined when none can be made. */
class MemoryCgroup {
  private constructor(readonly dir: string) {}

  static async create(limitMb: number): Promise<MemoryCgroup | undefined> {
    try {
      const self = (await readFile('/proc/self/cgroup', 'utf8')).split('\n').find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
      const parent = self ? self.slice(self.indexOf(':', self.indexOf(':') + 1) + 1) : undefined;
      if (parent === undefined || !existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return undefined;
      const dir = join('/sys/fs/cgroup/memory', parent, `unik-build-${randomBytes(6).toString('hex')}`);
      await mkdir(dir);
      const cg = new MemoryCgroup(dir);
      try {
        const bytes = String(limitMb * 1024 * 1024);
        await writeFile(join(dir, 'memory.limit_in_bytes'), bytes);
        // memory + swap at the same limit: a build cannot page its way past it
        await writeFile(join(dir, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined);
        return cg;
      } catch {
        await cg.remove();
        return undefined;
      }
    } catch {
      return undefined;
    }
  }

  add(pid: number): Promise<void> {
    return writeFile(join(this.dir, 'cgroup.procs'), String(pid));
  }

  /** Did the kernel's OOM killer act in this cgroup? */
  async oomKilled(): Promise<boolean> {
    const oom = await readFile(join(this.dir, 'memory.oom_control'), 'utf8').catch(() => '');
    const kills = /oom_kill (\d+)/.exec(oom);
    if (kills) return Number(kills[1]) > 0;
    return Number(await readFile(join(this.dir, 'memory.failcnt'), 'utf8').catch(() => '0')) > 0;
  }

  async killAll(): Promise<void> {
    const pids = (await readFile(join(this.dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Removes the cgroup once its last process is gone (they die with the sandbox's pid namespace). */
  async remove(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      try {
        await rmdir(this.dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        await this.killAll();
        await sleep(20);
      }
    }
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
  const user = buildUser();
  const cgroup = await MemoryCgroup.create(memoryMb);
  opts.onNote?.(
    `sandbox: ${file} as ${user.name} (uid ${user.uid}), no network, ${timeoutSec} s and ${memoryMb} MB at most (${cgroup ? 'memory cgroup' : 'RLIMIT_AS through prlimit: no memory cgroup could be made'})`,
  );

  const drop = ['setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), '--clear-groups', '--no-new-privs', '--bounding-set=-all', '--inh-caps=-all'];
  const limit = cgroup ? [] : ['prlimit', `--as=${memoryMb * 1024 * 1024}`, '--'];
  const bwrapArgs = [
    '--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try',
    '--die-with-parent', '--new-session', '--hostname', 'unik-build',
    ...mounts(opts),
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
      createInterface({ input: child.stdout! }).on('line', take);
      createInterface({ input: child.stderr! }).on('line', take);
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
              reject(new Error(`could not put the build sandbox in its memory cgroup: ${e.message}`));
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
      return r;
    });
  } finally {
    await cgroup?.remove();
  }
}
