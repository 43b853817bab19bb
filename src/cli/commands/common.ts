// Helpers shared by the command modules.
import { Option, type Command } from 'commander';
import { CliError, reportItemError } from '../errors.js';

/** A subcommand that talks to the daemon; accepts --host after the command name too. */
export function clientCommand(parent: Command, nameAndArgs: string, description: string): Command {
  return parent
    .command(nameAndArgs)
    .description(description)
    .option('--host <HOST:PORT>', 'daemon address (overrides $UNIK_HOST and "unik target")');
}

/** A 2016 spelling kept for old scripts, hidden to keep --help short. */
export function legacyOption(flags: string, description: string, parse?: (v: string, prev: string[]) => string[]): Option {
  const opt = new Option(flags, description).hideHelp();
  if (parse) opt.argParser(parse);
  return opt;
}

/** Positional items plus the 2016 single-item flag (`--instance X`, `--image X`). */
export function itemsFrom(positional: string[], legacy: string | string[] | undefined, what: string): string[] {
  const extra = legacy === undefined ? [] : Array.isArray(legacy) ? legacy : [legacy];
  const items = [...positional, ...extra];
  if (items.length === 0) throw new CliError(`missing ${what}`, `give at least one ${what} name`);
  return items;
}

export function oneItem(positional: string | undefined, legacy: string | undefined, what: string): string {
  const item = positional ?? legacy;
  if (!item) throw new CliError(`missing ${what}`, `give the ${what} name or id`);
  return item;
}

/**
 * Runs `fn` on each item like docker does: prints each item done, reports each failure, and
 * sets exit code 1 at the end if any failed. An unreachable daemon stops the whole loop.
 */
export async function forEachItem(items: string[], fn: (item: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const item of items) {
    try {
      await fn(item);
      process.stdout.write(`${item}\n`);
    } catch (err) {
      reportItemError(item, err);
      failed = true;
    }
  }
  if (failed) process.exitCode = 1;
}

/** Aborts `controller` on Ctrl-C while `fn` runs, so streams end cleanly and finally blocks run. */
export async function withSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
