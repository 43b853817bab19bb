// Runs the real CLI program in-process for unit tests, capturing what it prints.
import { buildProgram } from '../../src/cli/program.js';

/** Runs the CLI with stdout/stderr captured; restores process.exitCode. */
export async function cli(args: string[]): Promise<{ out: string; err: string; exitCode: number | undefined; error?: unknown }> {
  let out = '';
  let err = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  const savedCode = process.exitCode;
  process.exitCode = undefined;
  // Only strings: the test runner reports to its parent through stdout in binary chunks meanwhile.
  const capture = (stream: NodeJS.WriteStream, original: typeof process.stdout.write, add: (s: string) => void) =>
    (((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      add(chunk);
      return true;
    }) as typeof process.stdout.write);
  process.stdout.write = capture(process.stdout, write.out, (s) => (out += s));
  process.stderr.write = capture(process.stderr, write.err, (s) => (err += s));
  let error: unknown;
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'unik', ...args]);
  } catch (e) {
    error = e;
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
  const exitCode = typeof process.exitCode === 'number' ? process.exitCode : undefined;
  process.exitCode = savedCode;
  return error === undefined ? { out, err, exitCode } : { out, err, exitCode, error };
}
