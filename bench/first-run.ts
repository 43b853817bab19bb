// `npm run bench:first-run`: a new user's first run, as `npm run demo` does it, from a state
// with nothing of unik's: a fresh clone of this checkout's HEAD (no node_modules, no dist), an
// empty npm cache (every package is downloaded from the registry), an empty UNIK_HOME and an
// empty kernel cache (so the one kernel the Go example needs is built), and a daemon started by
// the demo on a free port. The apt packages are installed on this machine already, so their part
// is timed apart: apt installing the demo's packages into a chroot of a minimal Debian 12
// (debootstrap minbase, the container fixtures' base), downloads included.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../test/integration/harness.js';
import { cacheRoot } from '../test/integration/container-fixtures.js';
import { aptConfigWithLists } from '../src/compilers/debian-packages.js';
import { defaultArch } from '../src/model/arch.js';
import { ROOT, SMOKE, hostInfo, writeModuleResult, writeReadmeBlock } from './lib.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-bench-first-run-'));
const home = join(scratch, 'home');
const kernels = SMOKE ? (process.env.UNIK_KERNEL_CACHE ?? join(process.env.HOME ?? '/root', '.unik', 'kernels')) : join(scratch, 'kernels');
mkdirSync(home, { recursive: true });
const clone = join(scratch, 'unik');
const npmCache = join(scratch, 'npm-cache');

/** The demo's package list, as scripts/setup.sh has it (read from the script, not copied). */
function demoPackages(): string[] {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const script = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8');
  const block = /DEMO_PACKAGES=\(([\s\S]*?)\n\)/.exec(script)?.[1];
  if (!block) throw new Error('no DEMO_PACKAGES in scripts/setup.sh');
  const qemu = arch === 'arm64' ? 'qemu-system-arm' : 'qemu-system-x86';
  return block.replace(/#.*$/gm, '').split(/\s+/).filter(Boolean).map((p) => (p === '"$DEMO_QEMU"' ? qemu : p));
}

/** What apt would download for those packages onto a minimal Debian 12: packages and bytes. */
async function aptDownload(packages: string[]): Promise<{ packages: number; bytes: number; base: string }> {
  const cache = join(scratch, 'apt');
  const conf = await aptConfigWithLists(cache, defaultArch());
  const statusFile = readFileSync(conf, 'utf8').match(/Dir::State::status "([^"]+)"/)![1]!;
  const base = readdirSync(cacheRoot(), { withFileTypes: true }).find((d) => d.isDirectory() && d.name.startsWith('debian-bookworm-minbase-'));
  let baseName = 'nothing installed';
  if (base && existsSync(join(cacheRoot(), base.name, 'rootfs.tar'))) {
    writeFileSync(statusFile, execFileSync('tar', ['-xOf', join(cacheRoot(), base.name, 'rootfs.tar'), './var/lib/dpkg/status'], { maxBuffer: 64 << 20 }));
    baseName = 'a debootstrap minbase Debian 12';
  }
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  delete env.APT_CONFIG;
  const out = execFileSync('apt-get', ['-c', conf, 'install', '--print-uris', '-qq', ...packages], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const rows = out.split('\n').filter((l) => l.startsWith("'"));
  return { packages: rows.length, bytes: rows.reduce((n, l) => n + Number(l.split(' ')[2] ?? 0), 0), base: baseName };
}

/**
 * The apt part timed for real: the demo's packages installed by apt into a chroot of a minimal
 * Debian 12 (the fixtures' debootstrap minbase root), downloads from the host's Debian mirror
 * included. Services are not started (policy-rc.d), as on any chroot install.
 */
function timeAptInChroot(packages: string[]): { seconds: number } | { skipped: string } {
  const base = readdirSync(cacheRoot(), { withFileTypes: true }).find((d) => d.isDirectory() && d.name.startsWith('debian-bookworm-minbase-'));
  const tar = base && join(cacheRoot(), base.name, 'rootfs.tar');
  if (!tar || !existsSync(tar)) return { skipped: 'no debootstrap minbase root cached (npm test makes it)' };
  const root = join(scratch, 'chroot');
  mkdirSync(root);
  execFileSync('tar', ['-xf', tar, '-C', root]);
  // replaced, never written through: either may be a link in a root
  for (const [file, text, mode] of [['usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', 0o755], ['etc/resolv.conf', readFileSync('/etc/resolv.conf', 'utf8'), 0o644]] as const) {
    rmSync(join(root, file), { force: true });
    writeFileSync(join(root, file), text, { mode, flag: 'wx' });
  }
  const mounts = ['proc', 'sys', 'dev'];
  for (const m of mounts) execFileSync('mount', ['--bind', `/${m}`, join(root, m)]);
  try {
    const t = Date.now();
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
    execFileSync('chroot', [root, 'apt-get', 'update', '-qq'], { env, stdio: 'ignore' });
    execFileSync('chroot', [root, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages], { env, stdio: 'ignore', maxBuffer: 64 << 20 });
    return { seconds: (Date.now() - t) / 1000 };
  } finally {
    for (const m of [...mounts].reverse()) execFileSync('umount', ['-l', join(root, m)]);
  }
}

const port = await freePort();
execFileSync('git', ['clone', '--quiet', ROOT, clone]);
const env = { ...process.env, npm_config_cache: npmCache, UNIK_HOME: home, UNIK_KERNEL_CACHE: kernels, UNIK_HOST: `127.0.0.1:${port}`, UNIK_BRIDGED: 'off', UNIK_LOG_LEVEL: 'warn', UNIK_DEMO_STARTED: String(Date.now()) };
const started = Date.now();
let output = '';
let daemonPid = 0;
try {
  // what `npm run demo` runs, in order
  for (const [cmd, args] of [['bash', ['scripts/setup.sh', 'demo']], [process.execPath, ['dist/scripts/demo.js']]] as const) {
    const code = await new Promise<number>((resolve) => {
      const p = spawn(cmd, [...args], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const take = (b: Buffer) => {
        output += b.toString();
        process.stderr.write(b);
      };
      p.stdout.on('data', take);
      p.stderr.on('data', take);
      p.on('close', (c) => resolve(c ?? 1));
    });
    daemonPid ||= Number(/started a daemon on \S+ \(pid (\d+)/.exec(output)?.[1] ?? 0);
    if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}`);
  }
  const total = (Date.now() - started) / 1000;
  const demoSaid = Number(/from `npm run demo` to this answer: ([\d.]+) s/.exec(output)?.[1]);
  const kernelBuilt = /building amd64 kernel|building arm64 kernel/.test(output);
  const answered = Number(/answered after ([\d.]+) s/.exec(output)?.[1]);
  // scripts/prepare-kernel.ts says how long the kernel and the guest init took
  const kernelSeconds = Number(/ready in ([\d.]+) s/.exec(output)?.[1]);
  const npmCi = /setup: npm ci/.test(output);
  const apt = await aptDownload(demoPackages());
  const aptTimed = SMOKE ? { skipped: 'smoke run' } : timeAptInChroot(demoPackages());
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: clone, encoding: 'utf8' }).trim();
  const freshTotal = 'seconds' in aptTimed ? total + aptTimed.seconds : undefined;
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const result = { host: hostInfo(), totalSeconds: total, demoSaidSeconds: demoSaid, kernelBuilt, kernelSeconds, npmCi, runToAnswerSeconds: answered, apt, aptTimed, commit, freshTotalSeconds: freshTotal, loadAverage: load };
  console.error(`first run: ${total.toFixed(1)} s (kernel built: ${kernelBuilt}); apt would fetch ${apt.packages} packages, ${(apt.bytes / 1e6).toFixed(0)} MB onto ${apt.base}`);
  writeModuleResult('first-run', result);
  writeReadmeBlock(
    'first-run',
    [
      `\`npm run bench:first-run\` on ${result.host.cores} cores (${result.host.cpuModel}), QEMU ${result.host.qemu}, load average ${load} at the end; ${new Date().toISOString().slice(0, 10)}:`,
      '',
      '| step | figure |',
      '|---|---|',
      `| \`npm run demo\` in a fresh clone (${commit}) → the example's first answer: \`npm ci\` ${npmCi ? 'from an empty npm cache' : 'NOT run'}, ${kernelBuilt ? 'the one kernel built' : 'kernel cached'}, apt packages already installed | ${total.toFixed(0)} s |`,
      `| of which the kernel build (and the guest init), while the npm packages' native addons compile beside it | ${kernelSeconds.toFixed(0)} s |`,
      `| of which \`unik run\` → first answer | ${answered.toFixed(2)} s |`,
      `| what apt fetches for the demo's ${demoPackages().length} packages onto ${apt.base} | ${apt.packages} packages, ${(apt.bytes / 1e6).toFixed(0)} MB |`,
      `| apt installing them into a chroot of ${apt.base}, downloads from this host's Debian mirror included | ${'seconds' in aptTimed ? `${aptTimed.seconds.toFixed(0)} s` : `not timed: ${aptTimed.skipped}`} |`,
      ...(freshTotal ? [`| **a fresh machine, added up**: apt + the first run | **${freshTotal.toFixed(0)} s** |`] : []),
    ].join('\n'),
  );
} finally {
  if (daemonPid) {
    try {
      process.kill(daemonPid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  try {
    execFileSync('pkill', ['-KILL', '-f', join(home, 'instances')]);
  } catch {
    /* no VM left */
  }
  rmSync(scratch, { recursive: true, force: true });
}
