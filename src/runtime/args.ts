// The runc command line: global flags, then a verb, then the verb's flags and operands.
// containerd's go-runc writes `runc --root R --log L --log-format json VERB [flags] ID [..]`;
// people write `--flag=value` too. Only flags that take a value need to be known here.

export interface GlobalFlags {
  root?: string;
  log?: string;
  logFormat: 'text' | 'json';
  systemdCgroup: boolean;
  debug: boolean;
}

export interface ParsedArgs {
  global: GlobalFlags;
  /** '' when only global flags (or --version / --help) were given */
  verb: string;
  /** the verb's flags: a boolean flag is true, a value flag its (last) value */
  flags: Record<string, string | boolean>;
  operands: string[];
  version: boolean;
  help: boolean;
}

export class UsageError extends Error {}

const GLOBAL_VALUE = new Set(['root', 'log', 'log-format', 'criu', 'rootless']);

const VERB_VALUE: Record<string, string[]> = {
  create: ['bundle', 'b', 'pid-file', 'console-socket', 'preserve-fds'],
  run: ['bundle', 'b', 'pid-file', 'console-socket', 'preserve-fds'],
  exec: ['process', 'p', 'console-socket', 'pid-file', 'cwd', 'env', 'e', 'user', 'u', 'additional-gids', 'g', 'process-label', 'apparmor', 'cap', 'c', 'preserve-fds'],
  ps: ['format', 'f'],
  list: ['format', 'f'],
  events: ['interval'],
  update: ['resources', 'r', 'blkio-weight', 'cpu-period', 'cpu-quota', 'cpu-rt-period', 'cpu-rt-runtime', 'cpu-share', 'cpuset-cpus', 'cpuset-mems', 'kernel-memory', 'kernel-memory-tcp', 'memory', 'memory-reservation', 'memory-swap', 'pids-limit', 'l3-cache-schema', 'mem-bw-schema'],
  checkpoint: ['image-path', 'work-path', 'parent-path', 'page-server', 'manage-cgroups-mode', 'empty-ns', 'auto-dedup'],
  restore: ['image-path', 'work-path', 'parent-path', 'page-server', 'manage-cgroups-mode', 'empty-ns', 'bundle', 'b', 'pid-file', 'console-socket'],
};

/** Short aliases of the verbs' flags, so handlers see one name. */
const ALIAS: Record<string, string> = { b: 'bundle', f: 'format', a: 'all', p: 'process', d: 'detach' };

export function parseArgs(argv: string[]): ParsedArgs {
  const global: GlobalFlags = { logFormat: 'text', systemdCgroup: false, debug: false };
  const out: ParsedArgs = { global, verb: '', flags: {}, operands: [], version: false, help: false };
  let i = 0;
  // global flags, up to the verb
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    const [name, inline] = splitFlag(a);
    if (name === 'version' || name === 'v') {
      out.version = true;
      continue;
    }
    if (name === 'help' || name === 'h') {
      out.help = true;
      continue;
    }
    let value: string | undefined = inline;
    if (GLOBAL_VALUE.has(name) && value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: --${name}`);
    }
    switch (name) {
      case 'root':
        global.root = value!;
        break;
      case 'log':
        global.log = value!;
        break;
      case 'log-format':
        if (value !== 'text' && value !== 'json') throw new UsageError(`invalid log-format: ${value} (text or json)`);
        global.logFormat = value;
        break;
      case 'systemd-cgroup':
        global.systemdCgroup = true;
        break;
      case 'debug':
        global.debug = true;
        break;
      case 'criu':
      case 'rootless':
        break; // accepted for runc compatibility; meaningless for a VM
      default:
        throw new UsageError(`flag provided but not defined: -${name}`);
    }
  }
  if (i >= argv.length) return out;
  out.verb = argv[i++]!;
  const valued = new Set(VERB_VALUE[out.verb] ?? []);
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.operands.push(...argv.slice(i + 1));
      break;
    }
    // after `exec ID` everything is the command
    if (!a.startsWith('-') || a === '-' || (out.verb === 'exec' && out.operands.length > 0)) {
      out.operands.push(a);
      continue;
    }
    const [name, inline] = splitFlag(a);
    if (valued.has(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: --${name}`);
      out.flags[ALIAS[name] ?? name] = value;
    } else {
      out.flags[ALIAS[name] ?? name] = inline === undefined ? true : inline !== 'false';
    }
  }
  return out;
}

function splitFlag(a: string): [string, string | undefined] {
  const body = a.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq < 0 ? [body, undefined] : [body.slice(0, eq), body.slice(eq + 1)];
}

/** runc accepts KILL, SIGKILL or 9; the default is SIGTERM. */
export function parseSignal(s: string | undefined): number {
  if (s === undefined || s === '') return 15;
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw new UsageError(`invalid signal: ${s}`);
    return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const n = SIGNALS[name];
  if (!n) throw new UsageError(`unknown signal "${s}"`);
  return n;
}

export const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11,
  USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21,
  TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};

export function signalName(n: number): string {
  const e = Object.entries(SIGNALS).find(([, v]) => v === n);
  return e ? `SIG${e[0]}` : `signal ${n}`;
}
