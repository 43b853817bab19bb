// `node dist/src/supervisor/main.js DIR`: supervises the VM described by DIR/launch.json.
// Kept to the few modules it needs: it is on the path of every run.
import { supervise } from './supervise.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: supervisor DIR\n');
  process.exit(2);
}
supervise(dir).catch((e: Error) => {
  try {
    process.stderr.write(`unik supervisor: ${e.stack ?? e.message}\n`);
  } finally {
    process.exit(1);
  }
});
