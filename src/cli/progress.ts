// Prints build progress events: a redrawn line on a terminal, throttled lines in a log.
import type { BuildProgress } from '../client/client.js';

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Below this percent step, a non-terminal output skips the event (logs stay short). */
const LOG_STEP_PERCENT = 5;

export class ProgressPrinter {
  private openLine = false; // a \r-redrawn line is on screen without its newline
  private lastStep: string | undefined;
  private lastLoggedPercent = -Infinity;

  constructor(private readonly out: ProgressStream) {}

  event(p: BuildProgress): void {
    const text = `[${p.Step}] ${p.Message}`;
    const stepChanged = p.Step !== this.lastStep;
    this.lastStep = p.Step;
    if (stepChanged) this.lastLoggedPercent = -Infinity;

    if (p.Percent === undefined) {
      this.line(text);
      return;
    }
    const pct = Math.max(0, Math.min(100, Math.round(p.Percent)));
    const withPct = `${text} ${pct}%`;
    if (this.out.isTTY) {
      const width = (this.out.columns ?? 80) - 1; // a wrapped line can't be redrawn with \r
      const shown = withPct.length > width ? withPct.slice(0, Math.max(0, width - 1)) + '…' : withPct;
      this.out.write(`\r${shown}\x1b[K`);
      this.openLine = true;
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

  private line(s: string): void {
    this.finish();
    this.out.write(s + '\n');
  }
}
