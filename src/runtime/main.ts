// unik-runc: an OCI runtime with runc's command line, for containerd's stock runc shim
// (io.containerd.runc.v2 with `BinaryName`). A bundle whose rootfs holds a unik image boots as
// a VM under QEMU; every other bundle (the pod's pause container, ordinary images) goes to runc.

import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, UsageError, type ParsedArgs } from './args.js';
import { EXIT, RuntimeError, type Ctx } from './context.js';
import { create } from './commands/create.js';
import { features, ps, refuse, state, version } from './commands/info.js';
import { del, kill, start } from './commands/lifecycle.js';
import { delegate } from './delegate.js';
import { RuntimeLog } from './log.js';
import { DEFAULT_ROOT } from './state.js';

const USAGE = `unik-runc: boots unikernel images as OCI containers (runc's command line)

usage: unik-runc [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] VERB [flags] ID

verbs:
  create --bundle DIR [--pid-file FILE] ID   prepare the VM (QEMU paused) and its monitor
  start ID                                   boot it: the app starts
  state ID                                   JSON state: created, running or stopped
  kill ID [SIGNAL] [--all]                   SIGTERM/SIGINT stop the app in order; others go to the app
  delete [--force] ID                        remove a stopped container (--force: any)
  ps --format json ID                        the container's pid
  features, version                          what this runtime is
  exec, pause, resume, update, events        not supported for unikernels (runc's containers: passed on)

Bundles without a unik image go to runc (UNIK_RUNC_DELEGATE, default /usr/sbin/runc) unchanged.
`;

type Handler = (ctx: Ctx) => Promise<number>;
const VERBS: Record<string, Handler> = {
  create,
  start,
  state,
  kill,
  delete: del,
  ps,
  features,
  version,
  exec: refuse,
  pause: refuse,
  resume: refuse,
  update: refuse,
  events: refuse,
  checkpoint: refuse,
  restore: refuse,
  run: refuse,
};

export async function main(argv: string[]): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    writeSync(2, `unik-runc: ${(e as Error).message}\n`);
    return EXIT.usage;
  }
  const log = new RuntimeLog(args.global.log, args.global.logFormat, args.global.debug || process.env.UNIK_RUNC_DEBUG === '1');
  log.debug(`unik-runc ${argv.join(' ')}`);
  if (args.version && !args.verb) return version();
  if (args.help || !args.verb) {
    writeSync(args.help ? 1 : 2, USAGE);
    return args.help ? 0 : EXIT.usage;
  }
  const ctx: Ctx = { args, argv, root: resolve(args.global.root ?? DEFAULT_ROOT), log, self: fileURLToPath(import.meta.url) };
  const handler = VERBS[args.verb];
  try {
    // `list`, `spec` and anything else runc knows: runc's business
    const code = handler ? await handler(ctx) : delegate(argv);
    log.debug(`unik-runc ${args.verb}: exit status ${code}`);
    return code;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log.error(msg);
    // as runc does: the error also goes to stderr (the log file is what the shim reads)
    if (args.global.log) writeSync(2, `unik-runc: ${msg}\n`);
    return e instanceof RuntimeError ? e.exitCode : e instanceof UsageError ? EXIT.usage : EXIT.error;
  }
}

const argv = process.argv.slice(2);
{
  main(argv).then(
    (code) => process.exit(code),
    (e: Error) => {
      writeSync(2, `unik-runc: ${e.stack ?? e.message}\n`);
      process.exit(EXIT.error);
    },
  );
}
