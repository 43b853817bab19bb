// Architectures: the names users give, the ELF checks of built programs, the kernel header of a
// pulled image, and which export each architecture may take.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { archOf, machineArch, parseArch, parsePlatform } from '../../src/model/arch.js';
import { checkElfArch, elfMachine, hasInterpreter } from '../../src/compilers/elf-deps.js';
import { kernelImageProblem } from '../../src/base/linux/kernel-image.js';
import { checkExportArch } from '../../src/export/export.js';
import { configTxt } from '../../src/export/rpi.js';
import type { ImageRecord } from '../../src/model/types.js';

const dir = mkdtempSync(join(tmpdir(), 'unik-arch-'));

test('architecture names: OCI and uname spellings; anything else refused with the list', () => {
  assert.equal(parseArch('arm64'), 'arm64');
  assert.equal(parseArch(' AArch64 '), 'arm64');
  assert.equal(parseArch('x86_64'), 'amd64');
  assert.equal(machineArch('arm64'), 'aarch64');
  assert.equal(archOf('__proto__'), undefined);
  assert.equal(archOf('constructor'), undefined);
  assert.throws(() => parseArch('riscv64'), /unknown architecture "riscv64"[\s\S]*/);
  assert.throws(() => parseArch('x'.repeat(10_000)), (e: Error) => e.message.length < 200);
  for (const [p, want] of [['linux/arm64', 'arm64'], ['linux/arm64/v8', 'arm64'], ['arm64/v8', 'arm64'], ['arm64', 'arm64'], ['linux/amd64', 'amd64'], ['linux/amd64/v3', 'amd64'], ['LINUX/AMD64', 'amd64']] as const)
    assert.equal(parsePlatform(p), want, p);
  for (const p of ['windows/amd64', 'linux/arm', 'linux/arm64/v7', 'linux/amd64/v8', 'linux/arm64/v8/x', 'linux/', '', 'darwin/arm64'])
    assert.throws(() => parsePlatform(p), /unknown (platform|architecture)/, p);
});

test('ELF checks: the machine of a built program, and whether it asks for a loader', async () => {
  const src = join(dir, 'p.c');
  writeFileSync(src, 'int main(void) { return 0; }\n');
  const armStatic = join(dir, 'arm-static');
  const armDynamic = join(dir, 'arm-dynamic');
  execFileSync('aarch64-linux-gnu-gcc', ['-static', '-o', armStatic, src]);
  execFileSync('aarch64-linux-gnu-gcc', ['-o', armDynamic, src]);
  assert.equal(await elfMachine(armStatic), 183);
  assert.equal(await elfMachine('/bin/ls'), 62);
  assert.equal(await hasInterpreter(armStatic), false);
  assert.equal(await hasInterpreter(armDynamic), true);
  await checkElfArch(armStatic, 'arm64', 'p');
  await assert.rejects(checkElfArch('/bin/ls', 'arm64', 'the program ls'), /the program ls is built for amd64, but the image is for arm64/);
  await assert.rejects(checkElfArch(src, 'amd64', 'p'), /not a 64-bit little-endian ELF/);
  // a program header table Linux would not load counts as dynamic (refused), and costs no memory
  const bad = Buffer.from(readFileSync(armStatic));
  bad.writeUInt16LE(4096, 54); // e_phentsize
  bad.writeUInt16LE(65535, 56); // e_phnum
  writeFileSync(join(dir, 'bad-ph'), bad);
  const before = process.memoryUsage().arrayBuffers;
  assert.equal(await hasInterpreter(join(dir, 'bad-ph')), true);
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 << 20);
  writeFileSync(join(dir, 'short'), bad.subarray(0, 40));
  assert.equal(await hasInterpreter(join(dir, 'short')), true);
});

test('kernel headers: a bzImage for amd64, a gzipped arm64 Image for arm64; anything else named', () => {
  const arm = join(dir, 'Image.gz');
  const header = Buffer.alloc(64);
  header.writeUInt32LE(0x644d5241, 56); // "ARM\x64"
  writeFileSync(arm, gzipSync(Buffer.concat([header, Buffer.alloc(1 << 20)])));
  assert.equal(kernelImageProblem(arm, 'arm64'), undefined);
  assert.match(kernelImageProblem(arm, 'amd64')!, /not a Linux bzImage/);
  writeFileSync(join(dir, 'plain'), Buffer.concat([header, Buffer.alloc(4096)]));
  assert.match(kernelImageProblem(join(dir, 'plain'), 'arm64')!, /not a gzipped arm64/);
  writeFileSync(join(dir, 'x86.gz'), gzipSync(Buffer.alloc(8192, 1)));
  assert.match(kernelImageProblem(join(dir, 'x86.gz'), 'arm64')!, /no "ARM\\x64" header/);
  const broken = Buffer.from(readFileSync(arm));
  broken.fill(0xff, 10, 200);
  writeFileSync(join(dir, 'broken.gz'), broken);
  assert.match(kernelImageProblem(join(dir, 'broken.gz'), 'arm64')!, /does not inflate|no "ARM/);
  // a gzip bomb is only inflated as far as its first 4 KiB of input go
  writeFileSync(join(dir, 'bomb.gz'), gzipSync(Buffer.alloc(512 << 20)));
  const before = process.memoryUsage().arrayBuffers;
  assert.match(kernelImageProblem(join(dir, 'bomb.gz'), 'arm64')!, /no "ARM/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20);
});

test('exports: PC disks take amd64 images, the Pi card arm64 ones; config.txt names nothing the image chose', () => {
  const image = (arch: string) => ({ name: 'app', manifest: { arch } }) as unknown as ImageRecord;
  checkExportArch(image('x86_64'), 'raw');
  checkExportArch(image('aarch64'), 'rpi');
  assert.throws(() => checkExportArch(image('aarch64'), 'qcow2'), /qcow2 disks boot amd64 images/);
  assert.throws(() => checkExportArch(image('x86_64'), 'rpi'), /needs an arm64 image/);
  assert.throws(() => checkExportArch(image('riscv64'), 'rpi'), /needs an arm64 image/);
  const txt = configTxt('evil\nkernel=/x\r\ninitramfs y');
  assert.equal(txt.split('\n').filter((l) => l.startsWith('kernel=')).length, 1);
  assert.match(txt, /^# unik: evil_kernel__x__initramfs_y,/m);
});
