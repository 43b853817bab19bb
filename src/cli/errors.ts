// Turns any error into what the user sees on stderr and the process exit code.
import { DaemonUnreachableError, UnikApiError } from '../client/errors.js';
import { PackError } from '../client/tarball.js';

/** A mistake in the command line or local setup: message (+ hint), exit 1, no stack. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface ErrorSink {
  write(s: string): unknown;
}

/** Prints `err` for a human and returns the exit code: 1 for expected failures, 2 for bugs. */
export function reportError(err: unknown, stderr: ErrorSink = process.stderr): number {
  if (err instanceof DaemonUnreachableError) {
    stderr.write(`unik: ${err.message}\n`);
    return 1;
  }
  if (err instanceof UnikApiError || err instanceof CliError) {
    stderr.write(`unik: ${err.message}\n`);
    if (err.hint) stderr.write(`hint: ${err.hint}\n`);
    return 1;
  }
  if (err instanceof PackError) {
    stderr.write(`unik: ${err.message}\n`);
    return 1;
  }
  if (err instanceof Error && err.name === 'AbortError') return 130; // Ctrl-C
  stderr.write(`unik: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 2;
}

/** One line for per-item failures (`rm a b c`): keeps going unless the daemon is gone. */
export function reportItemError(item: string, err: unknown, stderr: ErrorSink = process.stderr): void {
  if (err instanceof UnikApiError) {
    stderr.write(`unik: ${item}: ${err.message}\n`);
    if (err.hint) stderr.write(`hint: ${err.hint}\n`);
  } else {
    throw err;
  }
}
