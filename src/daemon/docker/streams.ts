import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Core } from '../../core/core.js';
import { readLogLines, type LogLine } from '../../core/logs.js';

/** Docker's multiplexed framing (Tty false): [stream, 0, 0, 0, size uint32 BE] + payload. */
export function frame(stream: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

export interface LogOptions {
  follow: boolean;
  /** last N lines, or all */
  tail?: number;
  timestamps: boolean;
  /** ms since the epoch */
  since?: number;
  until?: number;
  /** skip what the log already holds (attach shows only new output) */
  fromEnd?: boolean;
}

const live = (core: Core, id: string) => {
  const s = core.instances.list().find((i) => i.id === id)?.status.state;
  return s === 'running' || s === 'pending';
};

/**
 * Writes an instance's console as framed stdout; with follow, keeps going until the instance
 * stops or `closed()` says the client went away. The console is one stream: it goes to stdout.
 */
export async function streamLogs(core: Core, id: string, out: Writable, opts: LogOptions, closed: () => boolean): Promise<void> {
  const file = core.instances.logFile(id).file;
  const write = async (lines: LogLine[]) => {
    for (const l of lines) {
      if (opts.since !== undefined && l.ts < opts.since) continue;
      if (opts.until !== undefined && l.ts > opts.until) continue;
      const text = (opts.timestamps ? `${new Date(l.ts).toISOString()} ` : '') + l.text + '\n';
      if (!out.write(frame(1, Buffer.from(text)))) await new Promise((r) => out.once('drain', r));
    }
  };
  let { lines, next } = await readLogLines(file, 0);
  if (opts.fromEnd) lines = [];
  if (opts.tail !== undefined) lines = opts.tail === 0 ? [] : lines.slice(-opts.tail);
  await write(lines);
  while (opts.follow && !closed()) {
    const running = live(core, id);
    await sleep(100);
    const more = await readLogLines(file, next);
    next = more.next;
    await write(more.lines);
    if (!running) break;
  }
}

/**
 * Resolves with the exit code once the instance is no longer running (or was removed). An abort
 * (the client went away) drops the listeners; the promise then never settles.
 */
export function waitFor(core: Core, id: string, condition: string, signal?: AbortSignal): Promise<{ StatusCode: number; Error: null | { Message: string } }> {
  return new Promise((resolve) => {
    const result = (): { StatusCode: number; Error: null | { Message: string } } => {
      const i = core.instances.list().find((x) => x.id === id);
      const code = i?.status.exitCode ?? (i?.status.state === 'error' ? 255 : 0);
      return { StatusCode: code, Error: i?.status.error ? { Message: i.status.error } : null };
    };
    let last = result();
    const done = (r = result()) => {
      core.instances.events.off('change', onChange);
      core.instances.events.off('removed', onRemoved);
      resolve(r);
    };
    const onChange = (i: { id: string; status: { state: string } }) => {
      if (i.id !== id) return;
      last = result();
      if (condition === 'removed') return;
      if (i.status.state === 'stopped' || i.status.state === 'error') done();
    };
    const onRemoved = (rid: string) => {
      if (rid === id) done(last);
    };
    core.instances.events.on('change', onChange);
    core.instances.events.on('removed', onRemoved);
    signal?.addEventListener('abort', () => {
      core.instances.events.off('change', onChange);
      core.instances.events.off('removed', onRemoved);
    });
    if (condition !== 'next-exit' && condition !== 'removed' && !live(core, id) && core.instances.list().find((x) => x.id === id)?.status.state !== 'created') done();
  });
}
