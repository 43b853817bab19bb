// libvirt through Debian's `virsh`, with argv arrays (never a shell) and a deadline on every
// call: a wedged libvirtd must fail a request, not hang the daemon. virsh rather than a native
// binding: it is in the same Debian package as the daemon's clients, needs no compiler at
// install, and speaks every URI libvirt does (qemu+ssh:// included).

import { spawn } from 'node:child_process';

export class VirshError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const DEFAULT_DEADLINE_MS = 30_000;

export class Virsh {
  constructor(readonly uri: string) {}

  /** Runs `virsh -c URI ARGS`; resolves its stdout, rejects with what virsh said. */
  run(args: string[], opts: { deadlineMs?: number } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('virsh', ['-q', '-c', this.uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.deadlineMs ?? DEFAULT_DEADLINE_MS);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new VirshError(`virsh: ${e.message}`, ''));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve(out);
        const said = err.trim().replace(/^error: /gm, '').split('\n').join('; ');
        const why = signal === 'SIGKILL' ? `no answer from libvirt at ${this.uri} within ${(opts.deadlineMs ?? DEFAULT_DEADLINE_MS) / 1000} s` : said || `status ${code}`;
        reject(new VirshError(`virsh ${args[0]}: ${why}`, err));
      });
    });
  }

  /** The same, but a "no such domain / volume" answer resolves undefined instead of failing. */
  async maybe(args: string[], opts: { deadlineMs?: number } = {}): Promise<string | undefined> {
    try {
      return await this.run(args, opts);
    } catch (e) {
      if (e instanceof VirshError && /not found|no domain with|failed to get domain|no storage vol|not running/i.test(e.stderr)) return undefined;
      throw e;
    }
  }
}

/** A URI names another machine when it has a host part (qemu+ssh://host/system); qemu:///system is this one. */
export function isRemoteUri(uri: string): boolean {
  const m = /^[a-z0-9+]+:\/\/([^/]*)\//i.exec(uri);
  if (!m) return false;
  const host = m[1]!.replace(/^[^@]*@/, '').replace(/:\d+$/, '');
  return host !== '' && host !== 'localhost' && host !== '127.0.0.1';
}

/** A value inside XML text or an attribute. */
export function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
