import { handToBuildUser, sandboxed } from '../util/sandbox.js';
import type { ExecResult } from '../util/exec.js';
import type { CompileContext } from './types.js';

// Every command that reads or runs what the upload holds (make, compilers, jar, jdeps, ldd on
// its binaries) goes through here: confined (src/util/sandbox.ts), with this build's source and
// work folders as the only writable places. Host tools on host files (jlink, strip on unik's
// own runtime cache, ldd on /usr libraries) need no sandbox.

export interface ConfinedOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** more folders it may write (already handed to the build user) */
  writable?: string[];
  readable?: string[];
  /** keep its output out of the build's progress (ldd) */
  quiet?: boolean;
}

const noted = new WeakSet<CompileContext>();

export async function runConfined(ctx: CompileContext, tool: string, args: string[], opts: ConfinedOptions = {}): Promise<ExecResult> {
  // compilers make folders as root between runs (classes/, manifest scratch): hand them over each time
  await handToBuildUser([ctx.sourceDir, ctx.workDir]);
  return sandboxed(tool, args, {
    cwd: opts.cwd ?? ctx.sourceDir,
    writable: [ctx.sourceDir, ctx.workDir, ...(opts.writable ?? [])],
    readable: opts.readable ?? [],
    env: opts.env ?? {},
    onLine: opts.quiet ? undefined : (l) => ctx.progress({ step: 'compile', message: l }),
    onNote: (m) => {
      if (noted.has(ctx)) return;
      noted.add(ctx);
      ctx.progress({ step: 'compile', message: m });
    },
  });
}

/** `ldd` for files of the upload: ldd may run the program's own loader, so it runs confined. */
export function confinedLdd(ctx: CompileContext): (file: string) => Promise<ExecResult> {
  return (file) => runConfined(ctx, 'ldd', [file], { quiet: true });
}
