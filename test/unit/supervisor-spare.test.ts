// The spare supervisor (src/supervisor/spare.ts, main.ts --spare): it supervises only a folder of
// the instances folder it was started for, and ends when its launcher goes away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { SUPERVISOR_MAIN, startSupervisor } from '../../src/supervisor/client.js';
import { SPARE_ARG, SupervisorSpares } from '../../src/supervisor/spare.js';

function startSpare(instancesDir: string) {
  const child = spawn(process.execPath, [SUPERVISOR_MAIN, SPARE_ARG, instancesDir], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, pipe: child.stdio[3] as Duplex, exited };
}

test('hostile: a folder outside its instances folder (or a path climbing out with ..) is refused: nothing is read, written or run there', async () => {
  const root = mkdtempSync(join(tmpdir(), 'unik-spare-'));
  try {
    const instances = join(root, 'instances');
    const outside = join(root, 'outside');
    mkdirSync(instances);
    mkdirSync(outside);
    // a launch that would run a program, were it supervised
    writeFileSync(join(outside, 'launch.json'), JSON.stringify({ id: 'x', argv: ['/bin/touch', join(outside, 'ran')], qmpSocket: join(outside, 'q'), controlSocket: join(outside, 'c') }));
    for (const dir of [outside, join(instances, '..', 'outside'), join(instances, 'a', '..', '..', 'outside'), '/etc']) {
      const s = startSpare(instances);
      s.pipe.write(`${dir}\n`);
      assert.equal(await s.exited, 0, `${dir}: the spare ends without supervising`);
    }
    assert.deepEqual(readdirSync(outside).sort(), ['launch.json'], 'no status, log or program output was written');
    assert.ok(!existsSync(join(outside, 'ran')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a spare whose launcher goes away ends, without a word', async () => {
  const root = mkdtempSync(join(tmpdir(), 'unik-spare-'));
  try {
    const s = startSpare(root);
    let out = '';
    s.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    s.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    s.pipe.end();
    assert.equal(await s.exited, 0);
    assert.equal(out, '');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the pool: the first take has none and starts one shortly; a taken spare is alive; close ends the waiting one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'unik-spare-'));
  const pool = new SupervisorSpares(root);
  try {
    assert.equal(pool.take(), undefined, 'none before any run');
    let spare;
    for (let i = 0; i < 100 && !spare; i++) {
      await new Promise((r) => setTimeout(r, 100));
      spare = pool.take();
    }
    assert.ok(spare, 'one was started after the first take');
    assert.equal(spare.child.exitCode, null);
    spare.pipe.end();
    // the next one, then close
    let next;
    for (let i = 0; i < 100 && !next; i++) {
      await new Promise((r) => setTimeout(r, 100));
      next = (pool as unknown as { spare?: { child: { pid: number } } }).spare;
    }
    assert.ok(next, 'a taken spare is replaced');
    const pid = next.child.pid;
    pool.close();
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!existsSync(`/proc/${pid}`) || /\) Z/.test(String(await import('node:fs').then((f) => f.readFileSync(`/proc/${pid}/stat`, 'utf8')))), 'close ends the waiting spare');
  } finally {
    pool.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a spare that died before it was handed its folder fails the launch at once (not at the deadline), having done nothing', async () => {
  const root = mkdtempSync(join(tmpdir(), 'unik-spare-'));
  try {
    const dir = join(root, 'vm');
    mkdirSync(dir);
    // killed and not yet reaped (the daemon has not seen it go), then killed and seen gone
    for (const seen of [false, true]) {
      const s = startSpare(root);
      await new Promise((r) => setTimeout(r, 300));
      s.child.kill('SIGKILL');
      if (seen) await s.exited;
      const t0 = Date.now();
      await assert.rejects(startSupervisor(dir, { deadlineMs: 30_000, spare: { child: s.child, pipe: s.pipe } }), /said: nothing|ended/);
      assert.ok(Date.now() - t0 < 5000, `it took ${Date.now() - t0} ms`);
      assert.deepEqual(readdirSync(dir), [], 'nothing was written in its folder');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
