import { execFileSync, spawn } from 'node:child_process';
import { lstat, mkdir, chmod } from 'node:fs/promises';

// How every QEMU that unik starts is confined:
// - QEMU's seccomp sandbox: no obsolete syscalls, no fork/exec (spawn), no scheduler or
//   priority changes (resourcecontrol), and no set*id calls where the host's QEMU allows it.
// - When unik runs as root, QEMU drops to an unprivileged user (`unik-qemu` if the host has
//   one, else `nobody`) with -runas, once it has opened its files, sockets, disks and tap: a
//   guest that escapes into QEMU holds no capabilities and cannot read the host's files.
// What works is probed on this host's QEMU, never assumed.

/** The seccomp groups unik always denies; `elevateprivileges` is added as probed. */
const SANDBOX_BASE = 'on,obsolete=deny,spawn=deny,resourcecontrol=deny';
/** the user QEMU drops to (scripts/setup.sh makes it) */
export const QEMU_USER = 'unik-qemu';
/** the unprivileged users QEMU may run as, the first that exists */
const QEMU_USERS = [QEMU_USER, 'nobody'];
const PROBE_DEADLINE_MS = 10_000;

export interface QemuUser {
  name: string;
  uid: number;
  gid: number;
}

export interface Confinement {
  /** the -sandbox value, or '' if this QEMU has no seccomp support */
  sandbox: string;
  /** the unprivileged user QEMU runs as; undefined when it keeps the daemon's own user */
  user?: QemuUser;
  /** the options that make QEMU drop to `user` (-runas U, or -run-with user=U on QEMU 9+) */
  dropArgs: string[];
  /** one sentence for the log */
  summary: string;
  /**
   * For QEMUs that must die with their parent: this confinement, or, when the host cannot make
   * PID namespaces (see boundToParent), the same sandbox without the drop to `user`.
   */
  parentBound?: Confinement;
}

/** The options to append to a QEMU command line. */
export function confinementArgs(c: Confinement): string[] {
  return [...(c.sandbox ? ['-sandbox', c.sandbox] : []), ...c.dropArgs];
}

const probed = new Map<string, Promise<Confinement>>();

/** The confinement this host's QEMU supports, probed once per QEMU binary and process. */
export function qemuConfinement(qemu: string): Promise<Confinement> {
  let p = probed.get(qemu);
  if (!p) {
    p = probeConfinement(qemu);
    probed.set(qemu, p);
  }
  return p;
}

async function probeConfinement(qemu: string): Promise<Confinement> {
  const isRoot = process.getuid?.() === 0;
  const user = isRoot ? findUser() : undefined;
  const dropArgs = user ? dropOptions(qemu, user.name) : [];
  const candidates: { sandbox: string; drop: boolean; why: string }[] = [];
  if (user && dropArgs.length) {
    candidates.push({ sandbox: `${SANDBOX_BASE},elevateprivileges=deny`, drop: true, why: '' });
    // QEMU up to at least 7.2 installs its seccomp filter before it drops to the user, so a
    // denied setuid kills it. Allowed here, the set*id calls can only lower privilege: once
    // QEMU has dropped it holds no capabilities, and spawn=deny stops it executing setuid programs.
    candidates.push({ sandbox: `${SANDBOX_BASE},elevateprivileges=allow`, drop: true, why: ' (set*id calls allowed: this QEMU applies seccomp before it drops to the user; it has no capabilities left to raise)' });
  }
  candidates.push({ sandbox: `${SANDBOX_BASE},elevateprivileges=deny`, drop: false, why: '' });
  for (const c of candidates) {
    const extra = c.drop ? dropArgs : [];
    if (!(await runsWith(qemu, ['-sandbox', c.sandbox, ...extra]))) continue;
    const sandbox = c.sandbox;
    const who = c.drop && user ? `runs as ${user.name} (uid ${user.uid}) once it has opened its files` : isRoot ? `runs as root (no unprivileged user could be used: ${user ? `${qemu} has no -runas` : 'no unik-qemu or nobody user'})` : `runs as the daemon's user (uid ${process.getuid?.()})`;
    const summary = `QEMU is confined: seccomp sandbox -sandbox ${sandbox}${c.why}; it ${who}`;
    if (!c.drop || !user) return { sandbox, dropArgs: [], summary };
    const confined: Confinement = { sandbox, user, dropArgs: extra, summary };
    if (await succeeds('unshare', ['--pid', '--fork', '--kill-child=SIGKILL', '--', 'true'])) return confined;
    const root = `${SANDBOX_BASE},elevateprivileges=deny`;
    return { ...confined, summary: `${summary}; templates and unik-runc VMs run as root under -sandbox ${root} (no PID namespaces here to bind them to their parent)`, parentBound: { sandbox: root, dropArgs: [], summary } };
  }
  return { sandbox: '', dropArgs: [], summary: `warning: QEMU runs UNCONFINED: ${qemu} refused -sandbox (built without seccomp?); install a QEMU with seccomp support` };
}

/** The first of unik-qemu, nobody that the host knows (through NSS, as QEMU will look it up). */
function findUser(): QemuUser | undefined {
  for (const name of QEMU_USERS) {
    try {
      const [, , uid, gid] = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(':');
      if (uid && gid && Number(uid) !== 0) return { name, uid: Number(uid), gid: Number(gid) };
    } catch {
      /* no such user */
    }
  }
  return undefined;
}

/** -run-with user= (QEMU 9+, where -runas is deprecated) or -runas, as this QEMU's help lists. */
function dropOptions(qemu: string, name: string): string[] {
  let help = '';
  try {
    help = execFileSync(qemu, ['-help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: PROBE_DEADLINE_MS });
  } catch {
    return [];
  }
  if (/^-run-with .*user=/m.test(help)) return ['-run-with', `user=${name}`];
  if (/^-runas /m.test(help)) return ['-runas', name];
  return [];
}

function succeeds(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
}

/** Starts an empty machine with these options and quits it through its monitor: exit 0 = they work here. */
function runsWith(qemu: string, opts: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    // under coreutils' timeout: it ends even if this process dies before it says quit
    const child = spawn('timeout', ['-s', 'KILL', String(PROBE_DEADLINE_MS / 1000), qemu, '-M', 'none', '-nodefaults', '-no-user-config', '-display', 'none', ...opts, '-monitor', 'stdio'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const timer = setTimeout(() => child.kill('SIGTERM'), PROBE_DEADLINE_MS + 2000);
    child.on('error', () => resolve(false));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end('quit\n');
  });
}

/** The confinement of a QEMU that must die with its parent (give it to boundToParent too). */
export function parentBoundConfinement(c: Confinement): Confinement {
  return c.parentBound ?? c;
}

/**
 * A command that dies with its parent (SIGKILL included), for QEMUs that must not outlive the
 * process that owns them (a snapshot template, a unik-runc container's monitor). The kernel
 * clears a process's parent-death signal when it changes user, so a QEMU that drops to an
 * unprivileged user cannot keep one: it then runs in its own PID namespace, whose first process
 * (root, unchanged, with the parent-death signal) takes everything in it down when it dies.
 */
export function boundToParent(c: Confinement, command: string[]): string[] {
  const deathSignal = ['setpriv', '--pdeathsig', 'KILL'];
  if (!c.user) return [...deathSignal, ...command];
  return [...deathSignal, 'unshare', '--pid', '--fork', '--kill-child=SIGKILL', '--', 'unshare', '--fork', '--', ...command];
}

/**
 * A directory only this process's user can enter, made before QEMU binds its sockets in it:
 * QEMU (root when it binds) makes them, the daemon connects, nobody else can reach them.
 * An existing one is tightened, unless it is not a plain directory of ours.
 */
export async function privateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const st = await lstat(path);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) throw new Error(`${path} must be a directory owned by uid ${process.getuid?.()}, not a link or another user's`);
  if ((st.mode & 0o777) !== 0o700) await chmod(path, 0o700);
}
