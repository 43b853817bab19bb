import type { ParsedArgs } from './args.js';
import type { RuntimeLog } from './log.js';

/** What every verb gets: the parsed command line, the original argv (for runc), the log. */
export interface Ctx {
  args: ParsedArgs;
  argv: string[];
  root: string;
  log: RuntimeLog;
  /** this program's entry script, to start the monitor with */
  self: string;
}

/** Exit statuses: 1 an error (as runc), 2 a usage error, 3 an operation unikernels do not support. */
export const EXIT = { error: 1, usage: 2, unsupported: 3 } as const;

export class RuntimeError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
  ) {
    super(message);
  }
}

export function unsupported(verb: string, why = 'a unikernel is a VM with one app, no shell and no agent'): RuntimeError {
  return new RuntimeError(`${verb} is not supported for unikernels: ${why}`, EXIT.unsupported);
}
