// Runs the unit tests, then the integration tests (which boot real VMs, one file at a time).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const suites = ['dist/test/unit', 'dist/test/integration'].filter((d) => existsSync(d));
const args = ['--test', '--test-concurrency=1', '--test-reporter=spec', ...suites];
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
