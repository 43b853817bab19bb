// Entry point of the `unik` CLI (bin/unik imports the compiled file).
import { reportError } from './errors.js';
import { programFor } from './lazy.js';
import { takeDeferredCa } from './tls.js';

takeDeferredCa();

// `unik ps | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await (await programFor(process.argv)).parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err);
}
