import { createWriteStream, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';

// Where a template's device state goes when it is saved. QEMU may not run a program (seccomp
// spawn=deny, so no `exec:` migration), may not open files once it has dropped root, and QEMU
// 7.2 takes an outgoing `fd:` migration only from an fd passed over its monitor with
// SCM_RIGHTS, which Node cannot send. So QEMU sends the stream over loopback TCP to a one-shot
// listener here, and the connection is accepted only if its client socket belongs to that very
// QEMU process (its inode among the QEMU's open files, read from /proc): any other process that
// connects, another VM's QEMU included, is refused and the template is not saved. The check
// needs QEMU's end still open, so QEMU is asked to pause before it sends the device state
// (pause-before-switchover) until its connection has been accepted here.

export class StateReceiver {
  private accepted = false;
  private intruder = '';
  private done?: Promise<void>;

  private constructor(
    private readonly server: Server,
    private readonly file: string,
    /** the processes (QEMU, and the wrappers that started it) a genuine client belongs to */
    private readonly owners: () => number[],
  ) {
    server.on('connection', (s) => this.onConnection(s));
  }

  static async listen(file: string, owners: () => number[]): Promise<StateReceiver> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve);
    });
    return new StateReceiver(server, file, owners);
  }

  /** The migration URI to give QEMU. */
  get uri(): string {
    return `tcp:127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Resolves once QEMU's own connection is accepted; rejects if another came, or none in time. */
  async waitGenuine(deadlineMs: number): Promise<void> {
    const until = Date.now() + deadlineMs;
    while (!this.accepted) {
      if (this.intruder) throw new Error(this.intruder);
      if (Date.now() > until) throw new Error(`QEMU did not connect to save its state within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
    if (this.intruder) throw new Error(this.intruder);
  }

  /** Resolves once the genuine stream is written whole; rejects if anything else connected. */
  async finish(): Promise<void> {
    this.server.close();
    if (this.intruder) throw new Error(this.intruder);
    if (!this.done) throw new Error('QEMU never connected to save its state');
    await this.done;
    if (this.intruder) throw new Error(this.intruder);
  }

  close(): void {
    this.server.close();
  }

  private onConnection(s: Socket): void {
    const owner = this.accepted ? undefined : ownerOf(s, this.owners());
    if (owner === undefined) {
      this.intruder ||= `a process other than the template's QEMU connected to its state listener (from port ${s.remotePort}): the template is not saved`;
      s.destroy();
      return;
    }
    this.accepted = true;
    this.done = pipeline(s, createWriteStream(this.file, { flags: 'wx', mode: 0o600 }));
  }
}

/** The pid among `pids` whose open files hold the client end of this loopback connection. */
function ownerOf(s: Socket, pids: number[]): number | undefined {
  const inode = clientInode(s.remotePort!, s.localPort!);
  if (!inode) return undefined;
  const link = `socket:[${inode}]`;
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return pid;
        } catch {
          /* closed meanwhile */
        }
      }
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/** The inode of the socket 127.0.0.1:clientPort → 127.0.0.1:serverPort, from /proc/net/tcp. */
function clientInode(clientPort: number, serverPort: number): string | undefined {
  const hex = (port: number) => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(clientPort) && f[2] === hex(serverPort)) return f[9];
  }
  return undefined;
}

/** A process and all its descendants (a QEMU behind setpriv / unshare wrappers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      /* gone */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}
