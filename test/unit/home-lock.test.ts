// One daemon per UNIK_HOME, with real daemons (no VM boots): a second one exits at once naming
// the first and touches nothing; the lock dies with its holder, SIGKILL included, so a daemon
// restarted right after a crash starts at once and sweeps what the dead one left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, freePort } from '../integration/harness.js';
import { lockHome } from '../../src/store/home-lock.js';
import { createCore } from '../../src/core/core.js';
import { Store } from '../../src/store/db.js';
import { unikPaths } from '../../src/model/paths.js';
import type { UnikError } from '../../src/model/errors.js';
import { fakeImage } from '../fuzz/fixtures.js';

const CLI = join(ROOT, 'bin', 'unik');
const IMAGE = 'd1'.repeat(32);

interface Running {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function daemon(home: string, port: number): Running {
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'daemon', '--port', String(port)], {
    env: { ...process.env, UNIK_HOME: home, UNIK_HOST: '', UNIK_LOG_LEVEL: 'warn', UNIK_CACHE_MAX_MB: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (b: Buffer) => (out += b));
  proc.stderr!.on('data', (b: Buffer) => (out += b));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, out: () => out, exited };
}

async function listening(d: Running, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!/listening on/.test(d.out())) {
    if (d.proc.exitCode !== null) throw new Error(`daemon exited ${d.proc.exitCode}: ${d.out()}`);
    if (Date.now() > until) throw new Error(`daemon not listening within ${deadlineMs} ms: ${d.out()}`);
    await sleep(10);
  }
}

/** every path under the home with its type, size and mtime: what "touched nothing" compares */
function tree(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel))
    .sort()
    .flatMap((e) => {
      const p = join(rel, e);
      const st = lstatSync(join(dir, p));
      const line = `${p} ${st.isDirectory() ? 'd' : st.size} ${st.mtimeMs}`;
      return st.isDirectory() ? [line, ...tree(dir, p)] : [line];
    });
}

const imageRecord = () => fakeImage({ id: IMAGE, name: 'locked-img', sizeBytes: 2 });

test('a second daemon on the same home exits at once and touches nothing; after a SIGKILL a new one starts and sweeps', async () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-lock-'));
  const running: Running[] = [];
  try {
    // an image on record, so that what goes from its folder later is the sweep's doing
    const seed = new Store(unikPaths(home).db);
    seed.insertImage(imageRecord());
    seed.close();
    const snaps = join(home, 'images', IMAGE, 'snapshots');
    mkdirSync(join(snaps, '64m-tcg'), { recursive: true });
    writeFileSync(join(snaps, '64m-tcg', 'ram'), 'whole');

    const first = daemon(home, await freePort());
    running.push(first);
    await listening(first, 15_000);
    const firstPid = first.proc.pid!;
    assert.equal(readFileSync(join(home, 'daemon.pid'), 'utf8').trim(), String(firstPid));

    // what a crash would leave, planted while the first daemon runs
    mkdirSync(join(home, 'tmp', 'build-orphan'), { recursive: true });
    writeFileSync(join(home, 'tmp', 'build-orphan', 'main.go'), 'package main');
    mkdirSync(join(snaps, '64m-tcg.tmp-999-x'));
    writeFileSync(join(snaps, '64m-tcg.tmp-999-x', 'ram'), 'half');
    const before = tree(home);
    const dbMtime = statSync(join(home, 'state.db')).mtimeMs;

    const second = daemon(home, await freePort());
    running.push(second);
    const started = Date.now();
    assert.equal(await second.exited, 1, second.out());
    assert.ok(Date.now() - started < 5000, 'it exits at once, without waiting for the lock');
    assert.equal(
      second.out(),
      `unik: another unik daemon (pid ${firstPid}) is using UNIK_HOME ${home}\nhint: stop it first (kill ${firstPid}), or give this daemon another UNIK_HOME\n`,
    );
    assert.deepEqual(tree(home), before, 'no file written, removed or touched');
    assert.equal(statSync(join(home, 'state.db')).mtimeMs, dbMtime);
    assert.ok(existsSync(join(home, 'tmp', 'build-orphan', 'main.go')), 'no sweep');
    assert.ok(existsSync(join(snaps, '64m-tcg.tmp-999-x', 'ram')), 'no sweep');
    assert.ok(/listening/.test(first.out()) && first.proc.exitCode === null, 'the first one runs on');

    // the kernel drops the lock with its holder: a new daemon starts straight away
    first.proc.kill('SIGKILL');
    await first.exited;
    const t0 = Date.now();
    const third = daemon(home, await freePort());
    running.push(third);
    await listening(third, 2000);
    const took = Date.now() - t0;
    assert.ok(took < 2000, `started in ${took} ms`);
    assert.equal(readFileSync(join(home, 'daemon.pid'), 'utf8').trim(), String(third.proc.pid));
    assert.match(third.out(), /start-up sweep: removed 2 orphans/);
    assert.deepEqual(readdirSync(join(home, 'tmp')), [], 'tmp/ swept');
    assert.deepEqual(readdirSync(snaps), ['64m-tcg'], 'the half-made template went; the whole one stays');

    // a clean stop gives the lock back and takes its pid file with it
    third.proc.kill('SIGTERM');
    assert.equal(await third.exited, 0, third.out());
    assert.equal(existsSync(join(home, 'daemon.pid')), false);
  } finally {
    for (const d of running) if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
    await Promise.all(running.map((d) => d.exited));
    rmSync(home, { recursive: true, force: true });
  }
});

test('within one process too: a second core on a home is refused until the first is closed', async () => {
  const home = mkdtempSync(join(tmpdir(), 'unik-lock-'));
  try {
    const lock = lockHome(home);
    assert.throws(() => lockHome(home), (e: UnikError) => e.kind === 'FailedPrecondition' && e.code === 'UNIK_ERR_HOME_LOCKED' && e.message.includes(`this process (pid ${process.pid})`));
    lock.release();
    lock.release();

    const core = await createCore({ home, watch: false });
    await assert.rejects(createCore({ home, watch: false }), (e: UnikError) => e.code === 'UNIK_ERR_HOME_LOCKED');
    core.close();
    const again = await createCore({ home, watch: false });
    again.close();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
