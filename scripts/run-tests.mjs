// Runs the unit tests, then the integration tests (which boot real VMs, one file at a time).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const suites = ['dist/test/unit', 'dist/test/integration'].filter((d) => existsSync(d));
const args = ['--test', '--test-concurrency=1', '--test-reporter=spec', ...suites];
// no test makes a bridge on this host: user-mode networking by default; the networking tests
// run their daemon in a network namespace of their own and choose bridged networks there
const env = { ...process.env, UNIK_BRIDGED: 'off' };
const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
process.exit(r.status ?? 1);
