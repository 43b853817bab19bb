// The libvirt provider, for real: Debian's libvirtd (started by this test inside a network
// namespace it makes), domains defined and started through virsh, the image's PC kernel booted
// by libvirt's QEMU, on a bridged network, with a volume, env, published ports, logs, stop,
// start, the app's exit status, a daemon killed while its domain runs, and rm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, waitFor } from './harness.js';
import { NetNs, NsDaemon } from './netns.js';
import { Libvirtd } from './libvirtd.js';

const why = await Libvirtd.unavailable();
const ns = new NetNs();
const d = new NsDaemon(ns);
const libvirtd = new Libvirtd();
const scratch = mkdtempSync(join(tmpdir(), 'unik-lv-'));
const HOST_PORT = 18080;
// what an app could put in its env to break out of a domain definition, were it ever written there
const HOSTILE = `x'/></cmdline><qemu:commandline><qemu:arg value='-evil'/>&amp;"`;

before(async () => {
  if (why) return;
  await ns.create();
  await libvirtd.start(ns);
  await d.start();
  const push = await d.cli(['push', 'go-lv', join(ROOT, 'examples/go-http'), '--provider', 'libvirt', '--mountpoint', '/data']);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  mkdirSync(join(scratch, 'data'));
  writeFileSync(join(scratch, 'data', 'data.txt'), 'test_data');
});

after(async () => {
  rmSync(scratch, { recursive: true, force: true });
  if (why) return;
  if (process.exitCode) console.error(d.log());
  // this home's domains are named after its real path
  const ours = `unik-${createHash('sha256').update(realpathSync(d.home)).digest('hex').slice(0, 8)}-`;
  try {
    await d.destroy();
    // whatever a failed test left of this home's domains goes before the libvirtd does
    if (!(await Libvirtd.unavailable())) await libvirtd.start(ns).catch(() => undefined);
    for (const dom of virsh(['list', '--all', '--name']).split('\n').filter((n) => n.startsWith(ours)))
      for (const verb of ['destroy', 'undefine']) {
        try {
          virsh([verb, dom]);
        } catch {
          /* not running, or gone */
        }
      }
    for (const vol of virsh(['vol-list', '--pool', 'unik']).split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter((n) => n.startsWith(ours))) virsh(['vol-delete', '--pool', 'unik', vol]);
  } catch (e) {
    console.error(`cleaning up after the libvirt test: ${(e as Error).message}`);
  } finally {
    await libvirtd.stop();
    await ns.destroy();
  }
});

const virsh = (args: string[]) => execFileSync('timeout', ['30', 'virsh', '-q', '-c', 'qemu:///system', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inst = async (name: string) => (await d.api('GET', `/instances/${name}`)).json;
const domainOf = (id: string) => virsh(['list', '--all', '--name']).split('\n').find((n) => n.endsWith(`-${id.slice(0, 12)}`));
const untilState = (name: string, state: string) =>
  waitFor(`${name} to be ${state}`, async () => {
    const i = await inst(name);
    return i.State === state ? i : undefined;
  });

test('unik providers lists libvirt, reachable at qemu:///system; the image has a PC kernel', { skip: why }, async () => {
  const r = await d.cli(['providers']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /libvirt\s.*qemu:\/\/\/system/);
  const compilers = await d.cli(['compilers']);
  assert.match(compilers.stdout, /linux-go-libvirt/);
  const img = (await d.api('GET', '/images/go-lv')).json;
  assert.equal(img.Provider, 'libvirt');
  assert.equal(img.Infrastructure, 'LIBVIRT');
  assert.equal(img.RunSpec.Compiler, 'linux-go-libvirt');
  // a PC's kernel (PCI, ACPI), not the microvm one
  const kernel = readFileSync(join(process.env.UNIK_KERNEL_CACHE || join(homedir(), '.unik', 'kernels'), img.KernelConfigHash, 'fragments'), 'utf8');
  assert.match(kernel, /\bpc\b/);
});

test('run: a libvirt domain boots the app on a bridged address, with env, a volume, a published port and logs', { skip: why }, async () => {
  assert.equal((await d.cli(['create-volume', 'data', '--data', join(scratch, 'data')])).code, 0);
  const run = await d.cli(['run', 'go-lv', '--name', 'web', '--env', `KEY=${HOSTILE}`, '--vol', 'data:/data', '-p', `127.0.0.1:${HOST_PORT}:8080`]);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  const web = await inst('web');
  assert.match(web.IpAddress, /^10\.89\.\d+\.\d+$/);
  const dom = domainOf(web.Id)!;
  assert.ok(dom, `a domain for ${web.Id} in ${virsh(['list', '--all', '--name'])}`);
  assert.equal(virsh(['domstate', dom]).trim(), 'running');
  assert.match(virsh(['dumpxml', dom]), /<title>web<\/title>/);

  // the app answers on its own address, reads its env and its volume; the host port relays to it
  assert.equal(await ns.httpUntil(`http://${web.IpAddress}:8080/ping_test`, 120_000), 'pong');
  assert.equal(await ns.httpUntil(`http://${web.IpAddress}:8080/env_test`), HOSTILE);
  assert.equal(await ns.httpUntil(`http://${web.IpAddress}:8080/mount_test`), 'test_data');
  assert.equal(await ns.httpUntil(`http://127.0.0.1:${HOST_PORT}/ping_test`), 'pong');
  // the env went to the guest in its initrd, never into the domain's definition
  assert.ok(!virsh(['dumpxml', dom]).includes('-evil'));

  await ns.httpUntil(`http://${web.IpAddress}:8080/log_test?line=hello-from-libvirt`);
  const logs = await waitFor('the console line', async () => {
    const r = await d.cli(['logs', 'web']);
    return r.stdout.includes('hello-from-libvirt') ? r.stdout : undefined;
  });
  assert.match(logs, /go-http listening on :8080/);
  // the PC kernel set its clock from the domain's CMOS clock (libvirt's <clock offset='utc'/>): the host's time
  const clock = Number(/clock from the hardware RTC: (\d+)/.exec(logs)?.[1]);
  assert.ok(Math.abs(clock - Date.now() / 1000) < 300, `guest clock ${clock}`);
});

test('stop asks the app to end and the domain shuts off; start boots it again at the same address, its volume data kept', { skip: why }, async () => {
  const before = await inst('web');
  assert.equal(await ns.httpUntil(`http://${before.IpAddress}:8080/write_test?name=kept.txt&data=still-here`), 'written');
  const stop = await d.cli(['stop', 'web']);
  assert.equal(stop.code, 0, stop.stderr);
  const stopped = await untilState('web', 'stopped');
  // the guest's init passed SIGTERM to the app, which Go's default handler dies of
  assert.equal(stopped.ExitCode, 143);
  assert.equal(virsh(['domstate', domainOf(before.Id)!]).trim(), 'shut off');

  assert.equal((await d.cli(['start', 'web'])).code, 0);
  const again = await inst('web');
  assert.equal(again.IpAddress, before.IpAddress);
  assert.equal(await ns.httpUntil(`http://${again.IpAddress}:8080/read_test?name=kept.txt`, 120_000), 'still-here');
});

test('a daemon killed while its domain runs finds it again, ports relayed, and stops it', { skip: why }, async () => {
  const web = await inst('web');
  d.proc!.kill('SIGKILL');
  await new Promise((r) => d.proc!.once('exit', r));
  assert.equal(virsh(['domstate', domainOf(web.Id)!]).trim(), 'running', 'the domain outlives the daemon');
  await d.start();
  assert.equal((await inst('web')).State, 'running');
  assert.equal(await ns.httpUntil(`http://127.0.0.1:${HOST_PORT}/ping_test`), 'pong');
});

test("the app's exit status reaches the daemon", { skip: why }, async () => {
  const web = await inst('web');
  await ns.httpUntil(`http://${web.IpAddress}:8080/exit_test?code=7`);
  const stopped = await untilState('web', 'stopped');
  assert.equal(stopped.ExitCode, 7);
});

test('rm undefines the domain and deletes its files from the pool', { skip: why }, async () => {
  const web = await inst('web');
  const dom = domainOf(web.Id)!;
  assert.equal((await d.cli(['rm', 'web'])).code, 0);
  assert.equal(domainOf(web.Id), undefined);
  assert.ok(!virsh(['vol-list', '--pool', 'unik']).includes(dom), virsh(['vol-list', '--pool', 'unik']));
});

test('with libvirtd down, the daemon still starts, says why libvirt is unavailable, and settles the instance once libvirtd is back', { skip: why }, async () => {
  const run = await d.cli(['run', 'go-lv', '--name', 'web2', '--vol', 'data:/data']);
  assert.equal(run.code, 0, run.stderr + run.stdout);
  const web2 = await inst('web2');
  d.proc!.kill('SIGKILL');
  await new Promise((r) => d.proc!.once('exit', r));
  await libvirtd.stop({ keepLogs: true });
  await d.start();
  const providers = await d.cli(['providers']);
  assert.match(providers.stdout, /libvirt\s.*no\s.*cannot reach libvirt/s, providers.stdout);
  assert.equal((await inst('web2')).State, 'running', 'the record is left as it was');
  await libvirtd.start(ns);
  assert.equal(virsh(['domstate', domainOf(web2.Id)!]).trim(), 'running');
  assert.equal(await ns.httpUntil(`http://${web2.IpAddress}:8080/mount_test`), 'test_data');
  assert.equal((await d.cli(['rm', '-f', 'web2'])).code, 0);
  assert.equal(domainOf(web2.Id), undefined);
});
