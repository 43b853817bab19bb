// Prints build, push and pull progress events: a redrawn line on a terminal, throttled lines in a log.
import type { BuildProgress } from '../client/client.js';
import { humanSize } from './output.js';

/** A build event, or a hub push/pull event that also counts bytes. */
export type ProgressEvent = BuildProgress & { Bytes?: number; Total?: number };

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Below this percent step, a non-terminal output skips the event (logs stay short). */
const LOG_STEP_PERCENT = 5;
/** A byte counter without a total is logged at most this often off a terminal. */
const LOG_INTERVAL_MS = 2000;

const isCount = (n: number | undefined): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/** `4.2 MB/10 MB`, `4.2 MB`, or '' when the event counts no bytes. */
export function byteCounts(p: ProgressEvent): string {
  if (!isCount(p.Bytes)) return '';
  return isCount(p.Total) && p.Total > 0 ? `${humanSize(p.Bytes)}/${humanSize(p.Total)}` : humanSize(p.Bytes);
}

export class ProgressPrinter {
  private openLine = false; // a \r-redrawn line is on screen without its newline
  private lastStep: string | undefined;
  private lastMessage: string | undefined;
  private lastLoggedPercent = -Infinity;
  private lastPercent = -Infinity;
  private lastLoggedAt = -Infinity;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {}

  event(p: ProgressEvent): void {
    const bytes = byteCounts(p);
    const text = bytes ? `[${p.Step}] ${p.Message} ${bytes}` : `[${p.Step}] ${p.Message}`;
    const stepChanged = p.Step !== this.lastStep;
    const messageChanged = stepChanged || p.Message !== this.lastMessage;
    this.lastStep = p.Step;
    this.lastMessage = p.Message;
    if (stepChanged) this.lastLoggedPercent = this.lastPercent = -Infinity;

    let percent = p.Percent;
    if (percent === undefined && isCount(p.Bytes) && isCount(p.Total) && p.Total > 0) percent = (p.Bytes / p.Total) * 100;
    if (percent === undefined) {
      if (!bytes) {
        this.line(text);
      } else if (this.out.isTTY) {
        this.redraw(text); // a byte counter without a total
      } else if (messageChanged || this.now() - this.lastLoggedAt >= LOG_INTERVAL_MS) {
        this.lastLoggedAt = this.now();
        this.line(text);
      }
      return;
    }
    const pct = Math.max(0, Math.min(100, Math.round(percent)));
    // A percent going back means the next item of the step (a push's next blob) has started.
    if (pct < this.lastPercent) this.lastLoggedPercent = -Infinity;
    this.lastPercent = pct;
    const withPct = `${text} ${pct}%`;
    if (this.out.isTTY) {
      this.redraw(withPct);
      if (pct >= 100) this.finish();
      return;
    }
    if (pct === 100 || pct - this.lastLoggedPercent >= LOG_STEP_PERCENT) {
      this.lastLoggedPercent = pct;
      this.line(withPct);
    }
  }

  /** Ends a redrawn line so later output starts on its own line. */
  finish(): void {
    if (this.openLine) this.out.write('\n');
    this.openLine = false;
  }

  private redraw(s: string): void {
    const width = (this.out.columns ?? 80) - 1; // a wrapped line can't be redrawn with \r
    const shown = s.length > width ? s.slice(0, Math.max(0, width - 1)) + '…' : s;
    this.out.write(`\r${shown}\x1b[K`);
    this.openLine = true;
  }

  private line(s: string): void {
    this.finish();
    this.out.write(s + '\n');
  }
}
