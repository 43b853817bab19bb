// arm64 unikernels: cross-built on this amd64 host (the kernel with gcc-aarch64-linux-gnu, Go
// with GOARCH, C with the cross gcc) and run for real under qemu-system-aarch64 -M virt (TCG
// here), with the same contract as amd64: env, a volume, published ports, logs, exit status,
// boot snapshots. Three arm64 kernels: the plain one (Go), the one with volumes (C), the Pi's.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Daemon, suiteDaemon, ROOT, freePort, httpUntil, waitFor, tarOf } from './harness.js';
import { Registry } from './registry.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-arm64-'));
const registry = new Registry();
const d = suiteDaemon({ setup: () => registry.start(), teardown: () => rmSync(scratch, { recursive: true, force: true }) });
after(() => registry.destroy());
const bootedFrom = (id: string): string[] => JSON.parse(readFileSync(join(d.home, 'instances', id, 'qemu.argv'), 'utf8')) as string[];
/** the first build of the suite may build the arm64 kernel (5-6 min on 2 cores) */
const KERNEL_BUILD_MS = 15 * 60_000;

test('Go for arm64: GOARCH=arm64, restored from its boot snapshot under -M virt; env, a published port, logs, exit status', { timeout: KERNEL_BUILD_MS + 240_000 }, async () => {
  const push = await d.cli(['push', 'go-arm', join(ROOT, 'examples/go-http'), '--arch', 'arm64'], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const img = (await d.api('GET', '/images/go-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  const manifest = JSON.parse(readFileSync(join(d.home, 'images', img.Id, 'manifest.json'), 'utf8'));
  assert.equal(manifest.arch, 'aarch64');
  assert.deepEqual(manifest.kernel.fragments, ['base', 'arm64', 'net']);
  // the kernel is a gzipped arm64 Image
  assert.deepEqual([...readFileSync(join(d.home, 'images', img.Id, 'kernel')).subarray(0, 2)], [0x1f, 0x8b]);
  const images = await d.cli(['images']);
  assert.match(images.stdout, /^NAME\s+ID\s+LANGUAGE\s+ARCH\s+/m);
  assert.match(images.stdout, /go-arm\s+\S+\s+go\s+arm64\s+qemu/);

  // the boot snapshot is made in the background after the build; the run restores it
  const snapshot = join(d.home, 'images', img.Id, 'snapshots');
  await waitFor('the boot snapshot', async () => (existsSync(snapshot) && readdirSync(snapshot).some((s) => existsSync(join(snapshot, s, 'state'))) ? true : undefined), 180_000);
  const port = await freePort();
  const run = await d.cli(['run', 'go-arm', '--name', 'arm', '-p', `${port}:8080`, '-e', 'KEY=arm64 env']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'arm64 env', 'the config came over the control line after the restore');
  const argv = bootedFrom((await d.api('GET', '/instances/arm')).json.Id);
  assert.match(argv[0]!, /qemu-system-aarch64$/);
  assert.deepEqual(argv.slice(argv.indexOf('-M'), argv.indexOf('-M') + 2), ['-M', 'virt']);
  assert.ok(argv.includes('-incoming'), 'restored from the boot snapshot');
  assert.match((await d.cli(['logs', 'arm'])).stdout, /listening on :8080/);

  // the app's own exit status comes back over the arm64 control line (a virtio console)
  await httpUntil(`http://127.0.0.1:${port}/exit_test?code=9`);
  const done = await waitFor('the app to exit', async () => {
    const i = (await d.api('GET', '/instances/arm')).json;
    return i.State === 'stopped' ? i : undefined;
  }, 60_000);
  assert.equal(done.ExitCode, 9);
  assert.equal((await d.cli(['start', 'arm'])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal((await d.cli(['stop', 'arm'])).code, 0);
  assert.equal((await d.api('GET', '/instances/arm')).json.ExitCode, 143, 'an orderly stop: SIGTERM to the app');
  assert.equal((await d.cli(['rm', 'arm'])).code, 0);
});

test('C for arm64: the Makefile gets the cross compiler and links static; a volume, booted cold', { timeout: KERNEL_BUILD_MS + 180_000 }, async () => {
  const push = await d.cli(['push', 'c-arm', join(ROOT, 'examples/c-http'), '--arch', 'arm64', '--mountpoint', '/data'], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const img = (await d.api('GET', '/images/c-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  assert.equal(img.Language, 'c');
  assert.ok(img.SizeBytes < 4_000_000, `a static arm64 C image is small: ${img.SizeBytes}`);
  const data = join(scratch, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'data.txt'), 'from an arm64 volume');
  assert.equal((await d.cli(['create-volume', 'armvol', '--data', data])).code, 0);
  const port = await freePort();
  const run = await d.cli(['run', 'c-arm', '--name', 'carm', '-p', `${port}:8080`, '-e', 'KEY=cold', '--vol', 'armvol:/data']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/env_test`), 'cold');
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/mount_test`), 'from an arm64 volume');
  assert.ok(!bootedFrom((await d.api('GET', '/instances/carm')).json.Id).includes('-incoming'), 'with a volume: a cold boot');
  assert.equal((await d.cli(['rm', '-f', 'carm'])).code, 0);
});

test('C++ for arm64: plain sources, cross-compiled and linked static; the program runs and its exit status comes back', { timeout: 180_000 }, async () => {
  const dir = join(scratch, 'cpp');
  mkdirSync(dir);
  writeFileSync(join(dir, 'hello.cpp'), '#include <iostream>\n#include <string>\nint main(int argc, char** argv) { std::string who = argc > 1 ? argv[1] : "nobody"; std::cout << "hello from arm64 c++, " << who << std::endl; return 5; }\n');
  const r = await d.upload('cpp-arm', tarOf(dir), '?arch=arm64&args=unik');
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.Language, 'cpp');
  assert.equal(r.json.Architecture, 'arm64');
  assert.equal((await d.api('POST', '/instances/run', { ImageName: 'cpp-arm', InstanceName: 'cpparm' })).status, 201);
  const done = await waitFor('the program to finish', async () => {
    const i = (await d.api('GET', '/instances/cpparm')).json;
    return i.State === 'stopped' ? i : undefined;
  }, 90_000);
  assert.equal(done.ExitCode, 5);
  assert.match((await d.cli(['logs', 'cpparm'])).stdout, /hello from arm64 c\+\+, unik/);
});

test("elf for arm64: the host's webfsd names its Debian package, whose arm64 build and libraries are fetched and serve files from a -M virt guest", { timeout: 300_000 }, async () => {
  const push = await d.cli(['push', 'webfs-arm', join(ROOT, 'test/fixtures/elf-webfs'), '--arch', 'arm64'], { timeoutMs: 240_000 });
  assert.equal(push.code, 0, push.stderr + push.stdout);
  assert.match(push.stdout + push.stderr, /comes from the Debian package webfs: taking its arm64 build/);
  const img = (await d.api('GET', '/images/webfs-arm')).json;
  assert.equal(img.Architecture, 'arm64');
  // the program and its loader in the image are arm64 ELF files (e_machine 183), not the host's
  const cpio = join(d.home, 'images', img.Id, 'root.cpio');
  const machineOf = (path: string): number => {
    const file = execFileSync('sh', ['-c', `zstd -dc "$1" | cpio -i --quiet --to-stdout "$2"`, 'sh', cpio, path], { maxBuffer: 1 << 28 });
    assert.ok(file.length > 64, `${path} is in the image`);
    return file.readUInt16LE(18);
  };
  assert.equal(machineOf('usr/bin/webfsd'), 183);
  assert.equal(machineOf('lib/ld-linux-aarch64.so.1'), 183);
  // hostile: a library path climbing out is looked up inside the unpacked packages only
  const bad = join(scratch, 'webfs-hostile');
  mkdirSync(bad);
  writeFileSync(join(bad, 'unik.yaml'), 'language: elf\nentry: /usr/bin/webfsd\nlibraries: [/lib/../../../../../etc/shadow]\n');
  const refused = await d.upload('webfs-bad', tarOf(bad), '?arch=arm64');
  assert.equal(refused.status, 400, JSON.stringify(refused.json));
  assert.equal(refused.json.code, 'UNIK_ERR_LIBRARY_NOT_FOUND');
  assert.equal((await d.api('GET', '/images/webfs-bad')).status, 404);
  const port = await freePort();
  assert.equal((await d.cli(['run', 'webfs-arm', '--name', 'webfs-arm', '-p', `${port}:8080`])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`, 120_000), 'pong', 'the arm64 webfsd served the file added by unik.yaml files:');
  assert.match(bootedFrom((await d.api('GET', '/instances/webfs-arm')).json.Id)[0]!, /qemu-system-aarch64$/);
  assert.equal((await d.cli(['rm', '-f', 'webfs-arm'])).code, 0);
});

test('the Raspberry Pi: an SD card whose boot partition the firmware reads; it boots under -M raspi3b to the app', { timeout: KERNEL_BUILD_MS + 180_000 }, async () => {
  const card = join(scratch, 'c-arm.rpi.img');
  const r = await d.cli(['export', 'c-arm', '--format', 'rpi', '-o', card], { timeoutMs: KERNEL_BUILD_MS });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // an MBR with one FAT32 (LBA) partition at 1 MiB; a card size QEMU's SD model takes (a power of two)
  const table = JSON.parse(execFileSync('sfdisk', ['--json', card], { encoding: 'utf8' })).partitiontable;
  assert.equal(table.label, 'dos');
  assert.deepEqual(table.partitions.map((p: any) => [p.start, p.type]), [[2048, 'c']]);
  const size = readFileSync(card).length;
  assert.equal(size & (size - 1), 0, `${size} is a power of two`);
  const fat = `${card}@@1M`;
  const files = execFileSync('mdir', ['-i', fat, '-b', '::/'], { encoding: 'utf8' });
  for (const f of ['config.txt', 'cmdline.txt', 'kernel8.img', 'bcm2837-rpi-3-b.dtb', 'initrd.img']) assert.match(files, new RegExp(`::/${f.replace('.', '\\.')}`, 'i'), files);
  const out = join(scratch, 'card');
  mkdirSync(out);
  for (const f of ['config.txt', 'cmdline.txt', 'kernel8.img', 'bcm2837-rpi-3-b.dtb', 'initrd.img']) execFileSync('mcopy', ['-i', fat, `::/${f}`, join(out, f)]);
  const config = readFileSync(join(out, 'config.txt'), 'utf8');
  assert.match(config, /^arm_64bit=1$/m);
  assert.match(config, /^kernel=kernel8\.img$/m);
  assert.match(config, /^initramfs initrd\.img followkernel$/m);
  assert.match(config, /^device_tree=bcm2837-rpi-3-b\.dtb$/m);
  // what the firmware would load, booted as it would: the board's device tree, the kernel, the
  // initrd and cmdline.txt, with the card attached; the console is the mini UART (QEMU's second
  // serial line). QEMU 7.2's raspi3b has no USB, so the board's Ethernet is not there to answer:
  // the app starting and printing is the proof.
  await consoleUntil(/c-http listening on :8080/, 'qemu-system-aarch64', ['-M', 'raspi3b', '-nographic', '-no-reboot',
    '-kernel', join(out, 'kernel8.img'), '-dtb', join(out, 'bcm2837-rpi-3-b.dtb'), '-initrd', join(out, 'initrd.img'),
    '-append', readFileSync(join(out, 'cmdline.txt'), 'utf8').trim(), '-drive', `if=sd,format=raw,file=${card}`,
    '-serial', 'null', '-serial', 'stdio', '-monitor', 'none']);
});

/** Runs a program until its output matches `until` (then ends it) or a deadline passes; returns the output. */
function consoleUntil(until: RegExp, cmd: string, args: string[], deadlineMs = 180_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ${until} within ${deadlineMs} ms:\n${out.slice(-3000)}`));
    }, deadlineMs);
    const take = (b: Buffer) => {
      out += b.toString();
      if (until.test(out)) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(out);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', () => {
      clearTimeout(timer);
      if (!until.test(out)) reject(new Error(`${cmd} ended before ${until}:\n${out.slice(-3000)}`));
    });
  });
}

test("multi-architecture hub: two pushes to one tag make an OCI index; pulls pick the host's or the asked architecture", { timeout: 300_000 }, async () => {
  // the amd64 build of the same app (its kernel is the suite-wide cached one)
  const amd = await d.cli(['push', 'go-amd', join(ROOT, 'examples/go-http')]);
  assert.equal(amd.code, 0, amd.stderr);
  const ref = `${registry.host}/unik/multi:v1`;
  let r = await d.cli(['hub', 'push', 'go-amd', ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /index/, 'one architecture: a plain manifest');
  r = await d.cli(['hub', 'push', 'go-arm', ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /an index of linux\/amd64, linux\/arm64/);
  const skopeo = (args: string[], arch?: string) => JSON.parse(execFileSync('skopeo', [...(arch ? ['--override-arch', arch] : []), 'inspect', '--tls-verify=false', ...args, `docker://${ref}`], { encoding: 'utf8' }));
  const index = skopeo(['--raw']);
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(index.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`).sort(), ['linux/amd64', 'linux/arm64']);
  // skopeo, a peer, resolves the index to each platform's image config
  assert.equal(skopeo([], 'arm64').Architecture, 'arm64');
  assert.equal(skopeo([], 'amd64').Architecture, 'amd64');
  // pushing arm64 again replaces its entry: still two
  assert.equal((await d.cli(['hub', 'push', 'go-arm', ref])).code, 0);
  assert.equal(skopeo(['--raw']).manifests.length, 2);

  // the host's architecture by default, the asked one with --arch
  r = await d.cli(['hub', 'pull', ref, '--name', 'multi-host']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await d.api('GET', '/images/multi-host')).json.Architecture, 'amd64');
  r = await d.cli(['hub', 'pull', ref, '--name', 'multi-arm', '--arch', 'arm64']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await d.cli(['images'])).stdout, /multi-arm\s+\S+\s+go\s+arm64/);
  // the Docker API (a tag of its own: one local image per tag, as in Docker): docker pull --platform
  const dref = `${registry.host}/unik/multi:docker`;
  for (const img of ['go-amd', 'go-arm']) assert.equal((await d.cli(['hub', 'push', img, dref])).code, 0);
  const docker = (args: string[]) => execFileSync('timeout', ['-s', 'KILL', '60', 'docker', '-H', `tcp://127.0.0.1:${d.port}`, ...args], { encoding: 'utf8' });
  assert.match(docker(['pull', '--platform', 'linux/arm64', dref]), /Downloaded newer image/);
  assert.equal(docker(['image', 'inspect', '--format', '{{.Architecture}}', dref]).trim(), 'arm64');
  const history = await d.api('GET', `/v1.43/images/${dref}/history`);
  assert.equal(history.status, 501, 'a Docker route unik lacks, under a reference with slashes');
  // docker run --platform of the other architecture: the CLI is told the local image does not
  // match, pulls that platform, and runs it
  const dport = await freePort();
  const cid = docker(['run', '-d', '--platform', 'linux/amd64', '-p', `127.0.0.1:${dport}:8080`, dref]).trim();
  assert.equal(await httpUntil(`http://127.0.0.1:${dport}/ping_test`), 'pong');
  assert.equal(docker(['image', 'inspect', '--format', '{{.Architecture}}', dref]).trim(), 'amd64');
  docker(['rm', '-f', cid]);
  // the pulled arm64 image runs
  const port = await freePort();
  assert.equal((await d.cli(['run', 'multi-arm', '--name', 'pulled-arm', '-p', `${port}:8080`])).code, 0);
  assert.equal(await httpUntil(`http://127.0.0.1:${port}/ping_test`), 'pong');
  assert.equal((await d.cli(['rm', '-f', 'pulled-arm'])).code, 0);

  // a config that says arm64 over an amd64 image's layers (pushed with the plain registry API):
  // asked for arm64, the kernel's own header gives it away; nothing is stored
  const dockerIndex = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/unik/multi:docker`], { encoding: 'utf8' }));
  const amdDigest = dockerIndex.manifests.find((m: any) => m.platform.architecture === 'amd64').digest;
  const src = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/unik/multi@${amdDigest}`], { encoding: 'utf8' }));
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const start = await fetch(`http://${registry.host}/v2/unik/multi/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location')!, `http://${registry.host}`);
  loc.searchParams.set('digest', digest);
  assert.equal((await fetch(loc, { method: 'PUT', body: config, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
  const lying = { ...src, config: { ...src.config, digest, size: config.length } };
  assert.equal((await fetch(`http://${registry.host}/v2/unik/multi/manifests/lying`, { method: 'PUT', body: JSON.stringify(lying), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 201);
  const lie = await d.api('POST', `/images/pull/lying?ref=${registry.host}/unik/multi:lying&arch=arm64`);
  assert.equal(lie.status, 409, lie.text);
  assert.match(lie.json.message, /its \/unik\/kernel is not a gzipped arm64 Linux Image/);
  assert.equal((await d.api('GET', '/images/lying')).status, 404);

  // a platform the tag does not hold is named, and nothing is stored
  const single = `${registry.host}/unik/only-amd:v1`;
  assert.equal((await d.cli(['hub', 'push', 'go-amd', single])).code, 0);
  r = await d.cli(['hub', 'pull', single, '--name', 'nope', '--arch', 'arm64']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /is built for linux\/amd64, not linux\/arm64/);
  assert.equal((await d.api('GET', '/images/nope')).status, 404);
});

test('refused before anything is built: an unknown architecture, libvirt, a Makefile that ignores CC', async () => {
  let r = await d.upload('x', tarOf(join(ROOT, 'examples/go-http')), '?arch=riscv64');
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_UNKNOWN_ARCH');
  r = await d.upload('x', tarOf(join(ROOT, 'examples/go-http')), '?platform=windows/arm64');
  assert.equal(r.status, 400);
  r = await d.upload('x', tarOf(join(ROOT, 'examples/go-http')), '?platform=linux/arm64&arch=amd64');
  assert.equal(r.status, 400);
  assert.equal(r.json.code, 'UNIK_ERR_ARCH_CONFLICT');
  // a refused upload is not left behind
  assert.deepEqual(readdirSync(join(d.home, 'tmp')), []);
  r = await d.upload('x', tarOf(join(ROOT, 'examples/go-http')), '?arch=arm64&provider=libvirt');
  assert.equal(r.status, 400);
  assert.match(r.json.message, /libvirt provider does not run arm64 images/);

  // a Makefile that hard-codes the host compiler: its amd64 program is not put in an arm64 image
  const dir = join(scratch, 'hardcoded-cc');
  mkdirSync(dir);
  writeFileSync(join(dir, 'main.c'), 'int main(void) { return 0; }\n');
  writeFileSync(join(dir, 'Makefile'), 'prog: main.c\n\tgcc -static -o prog main.c\n');
  r = await d.upload('hardcoded', tarOf(dir), '?arch=arm64');
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.code, 'UNIK_ERR_WRONG_ARCH');
  assert.match(r.json.message, /built for amd64, but the image is for arm64/);
  assert.equal((await d.api('GET', '/images/hardcoded')).status, 404);
  assert.equal((await d.api('GET', '/images/x')).status, 404);

  // exports: PC disks are for amd64 images, the Pi's card for arm64 ones
  let e = await d.api('POST', '/images/go-arm/export?format=raw');
  assert.equal(e.status, 409, e.text);
  assert.match(e.json.message, /is for arm64; raw disks boot amd64 images/);
  e = await d.api('POST', '/images/go-amd/export?format=rpi');
  assert.equal(e.status, 409, e.text);
  assert.match(e.json.message, /a Raspberry Pi card needs an arm64 image/);
});

test('an arm64 image on a host without qemu-system-aarch64: refused with the package to install, nothing started', async () => {
  // a second daemon on the same images, whose arm64 QEMU is missing
  const other = new Daemon();
  other.env.UNIK_HOME = d.home;
  other.env.UNIK_QEMU_ARM64 = '/nonexistent/qemu-system-aarch64';
  await d.stop();
  try {
    await other.start();
    const r = await other.api('POST', '/instances/run', { ImageName: 'go-arm', InstanceName: 'noqemu' });
    assert.equal(r.status, 503, r.text);
    assert.match(r.json.message, /is for arm64, and \/nonexistent\/qemu-system-aarch64, which runs arm64 guests, is not installed/);
    assert.match(r.json.hint ?? r.json.message, /apt-get install qemu-system-arm/);
    assert.equal((await other.api('GET', '/instances/noqemu')).status, 404, 'no instance record left');
    const providers = (await other.api('GET', '/providers')).json;
    assert.match(JSON.stringify(providers), /arm64: \/nonexistent\/qemu-system-aarch64 is not installed/);
  } finally {
    await other.stop();
    await d.start();
  }
});
