import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// A minimal QMP client: JSON lines over QEMU's monitor socket, one command at a time.
// Hand-written because the few npm QMP clients are unmaintained and the protocol is small:
// a greeting, qmp_capabilities, then {"execute"} → {"return"} | {"error"}, with events between.

export class QmpError extends Error {}

export class Qmp {
  private buffer = '';
  private waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private closed: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    const end = (e?: Error) => {
      this.closed = e ?? new QmpError('QEMU closed the monitor');
      for (const w of this.waiting.splice(0)) w.reject(this.closed);
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  /**
   * Connects to a monitor socket that QEMU may not have created yet, retrying until the
   * deadline or until `alive()` says QEMU is gone. QEMU serves the monitor only once its
   * devices and back-ends are set up, so a greeting also means "QEMU started".
   */
  static async connect(path: string, deadlineMs: number, alive: () => boolean = () => true): Promise<Qmp> {
    const until = Date.now() + deadlineMs;
    for (;;) {
      const socket = await new Promise<Socket | Error>((resolve) => {
        const s = connect(path);
        s.once('connect', () => resolve(s));
        s.once('error', (e) => resolve(e));
      });
      if (!(socket instanceof Error)) {
        const qmp = new Qmp(socket);
        const greeting = new Promise((resolve, reject) => qmp.waiting.push({ resolve, reject }));
        await greeting;
        await qmp.execute('qmp_capabilities');
        return qmp;
      }
      if (!alive()) throw new QmpError('QEMU exited before its monitor came up');
      if (Date.now() > until) throw new QmpError(`QEMU's monitor did not come up within ${deadlineMs} ms (${socket.message})`);
      await sleep(2);
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; event?: string };
      if (msg.event) continue;
      const w = this.waiting.shift();
      if (!w) continue;
      if (msg.error) w.reject(new QmpError(`${msg.error.class}: ${msg.error.desc}`));
      else w.resolve(msg.QMP ?? msg.return);
    }
  }
}

/** Polls query-status until the VM leaves `from` (e.g. "inmigrate"); returns the new status. */
export async function waitStatusLeaves(qmp: Qmp, from: string, deadlineMs: number): Promise<string> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const { status } = await qmp.execute<{ status: string }>('query-status');
    if (status !== from) return status;
    if (Date.now() > until) throw new QmpError(`the VM was still "${from}" after ${deadlineMs} ms`);
    await sleep(2);
  }
}
