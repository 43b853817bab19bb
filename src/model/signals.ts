// Signal names a container image's StopSignal (or unik.yaml stopSignal) may give, and their
// numbers as the guest's Linux (x86-64 and arm64 share them) knows them. A fixed list: a name
// from outside is looked up here, never passed on.

const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGALRM: 14, SIGTERM: 15,
  SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGWINCH: 28, SIGPWR: 30,
};
/** glibc's SIGRTMIN (the kernel's 32 and 33 are the threading library's); systemd stops on SIGRTMIN+3 */
const RTMIN = 34;
const RTMAX = 64;

/**
 * The canonical name ("SIGQUIT") of a signal given as a name with or without SIG, in any case,
 * as SIGRTMIN+N / SIGRTMAX-N, or as a number; undefined if it is none of those.
 */
export function canonicalSignal(s: string): string | undefined {
  if (typeof s !== 'string' || s.length > 16) return undefined;
  const t = s.trim().toUpperCase();
  if (/^\d{1,2}$/.test(t)) {
    const n = Number(t);
    const name = Object.keys(SIGNALS).find((k) => SIGNALS[k] === n);
    if (name) return name;
    return n >= RTMIN && n <= RTMAX ? `SIGRTMIN+${n - RTMIN}` : undefined;
  }
  const name = t.startsWith('SIG') ? t : `SIG${t}`;
  if (SIGNALS[name] !== undefined) return name;
  const rt = /^SIGRT(MIN|MAX)([+-]\d{1,2})?$/.exec(name);
  if (!rt) return undefined;
  const n = (rt[1] === 'MIN' ? RTMIN : RTMAX) + Number(rt[2] ?? 0);
  return n >= RTMIN && n <= RTMAX ? `SIGRTMIN+${n - RTMIN}` : undefined;
}

/** The number of a signal (any form canonicalSignal takes); throws on one it does not know. */
export function signalNumber(s: string): number {
  const name = canonicalSignal(s);
  if (!name) throw new Error(`unknown signal ${JSON.stringify(String(s).slice(0, 20))}`);
  const rt = /^SIGRTMIN\+(\d+)$/.exec(name);
  return rt ? RTMIN + Number(rt[1]) : SIGNALS[name]!;
}
