import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

// Console logs are written by the VM, byte by byte, with no timestamps. While the daemon
// watches an instance it notes "<size> <ms>" in a sidecar index each time the log grows, so a
// line's time is known to within one watch interval (Docker's `logs -t` and `--since`).

export interface LogLine {
  text: string;
  /** ms since the epoch */
  ts: number;
}

const lastSeen = new Map<string, number>();

export function indexFile(logFile: string): string {
  return logFile.replace(/\.log$/, '') + '.idx';
}

/** Records the log's current size with the time, if it grew since last seen. */
export function stampLog(logFile: string): void {
  let size: number;
  try {
    size = statSync(logFile).size;
  } catch {
    return;
  }
  const idx = indexFile(logFile);
  let last = lastSeen.get(logFile);
  if (last === undefined) last = lastIndexed(idx);
  if (size > last) {
    appendFileSync(idx, `${size} ${Date.now()}\n`);
    lastSeen.set(logFile, size);
  } else if (size < last) {
    // the console was rotated: the old offsets mean nothing in the new file
    writeFileSync(idx, size > 0 ? `${size} ${Date.now()}\n` : '');
    lastSeen.set(logFile, size);
  }
}

/** Drops what stampLog remembers of a log (its instance is gone). */
export function forgetLog(logFile: string): void {
  lastSeen.delete(logFile);
}

function lastIndexed(idx: string): number {
  if (!existsSync(idx)) return 0;
  const lines = readFileSync(idx, 'utf8').trimEnd().split('\n');
  return Number(lines.at(-1)?.split(' ')[0]) || 0;
}

function loadIndex(idx: string): [number, number][] {
  if (!existsSync(idx)) return [];
  return readFileSync(idx, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number) as [number, number]);
}

/** The complete lines from byte `from` on, each with its time; returns where it stopped. */
export async function readLogLines(logFile: string, from = 0): Promise<{ lines: LogLine[]; next: number }> {
  const fh = await open(logFile, 'r').catch(() => undefined);
  if (!fh) return { lines: [], next: from };
  try {
    const { size } = await fh.stat();
    // smaller than where the reader was: the console was rotated (console.log.1), start again
    if (size < from) from = 0;
    if (size <= from) return { lines: [], next: from };
    const buf = Buffer.alloc(size - from);
    await fh.read(buf, 0, buf.length, from);
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) return { lines: [], next: from };
    const index = loadIndex(indexFile(logFile));
    const lines: LogLine[] = [];
    let offset = from;
    let i = 0;
    for (const text of buf.subarray(0, end).toString('utf8').split('\n')) {
      offset += Buffer.byteLength(text) + 1;
      while (i < index.length && index[i]![0] < offset) i++;
      lines.push({ text: text.replace(/\r$/, ''), ts: index[i]?.[1] ?? Date.now() });
    }
    return { lines, next: from + end + 1 };
  } finally {
    await fh.close();
  }
}
