// `node dist/src/supervisor/main.js DIR`: supervises the VM described by DIR/launch.json.
// `node dist/src/supervisor/main.js --spare PARENT`: a spare (spare.ts): waits for DIR, a folder in PARENT, on fd 3 first.
// Kept to the few modules it needs: it is on the path of every run.
import { openSync, readSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SPARE_ARG } from './spare.js';
import { logErrorsTo, supervise } from './supervise.js';

const LAUNCHER_FD = 3;
const MAX_DIR = 4096;

/** One line from the launcher, read blocking (a spare has nothing else to do); '' if the launcher went away. */
function readLine(fd: number): string {
  const bytes: number[] = [];
  const one = Buffer.alloc(1);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (bytes.length < MAX_DIR) {
    let n: number;
    try {
      n = readSync(fd, one, 0, 1, null);
    } catch (e) {
      // the pipe may be non-blocking: wait a little and try again
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      return '';
    }
    if (n === 0) return '';
    if (one[0] === 0x0a) return Buffer.from(bytes).toString('utf8');
    bytes.push(one[0]!);
  }
  return '';
}

const spare = process.argv[2] === SPARE_ARG;
let dir = spare ? readLine(LAUNCHER_FD) : process.argv[2];
// a spare supervises only a folder of the instances folder it was started for
if (spare && dir && (!process.argv[3] || dirname(resolve(dir)) !== resolve(process.argv[3]))) dir = '';
if (!dir) {
  // a spare whose launcher went away ends quietly; a supervisor started without DIR says how to use it
  if (spare) process.exit(0);
  process.stderr.write('usage: supervisor DIR | --spare\n');
  process.exit(2);
}
// a spare's stderr is /dev/null: its errors go where a supervisor started for this VM writes them
let errFd = 2;
if (spare) {
  try {
    errFd = openSync(join(dir, 'supervisor.log'), 'a', 0o600);
    logErrorsTo(errFd);
    // what Node itself would print on fd 2 (an uncaught exception, a warning) goes there too
    const fd = errFd;
    process.on('uncaughtExceptionMonitor', (e) => writeSync(fd, `unik supervisor: ${e.stack ?? e.message}\n`));
    process.on('warning', (w) => writeSync(fd, `unik supervisor: ${w.name}: ${w.message}\n`));
  } catch {
    /* the report on fd 3 still says what went wrong */
  }
}
supervise(dir).catch((e: Error) => {
  try {
    writeSync(errFd, `unik supervisor: ${e.stack ?? e.message}\n`);
  } finally {
    process.exit(1);
  }
});
