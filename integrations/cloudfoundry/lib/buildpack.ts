// The unik buildpack's scripts, as Cloud Foundry's buildpack lifecycle runs them (bin/* call this
// file with the script's name first):
//   detect   BUILD_DIR                                        → prints unik-LANGUAGE, exit 0; exit 1: not an app unik builds
//   supply   BUILD_DIR CACHE_DIR DEPS_DIR DEPS_IDX            → the launcher and its Node runtime into DEPS_DIR/DEPS_IDX
//   finalize BUILD_DIR CACHE_DIR DEPS_DIR DEPS_IDX [PROFILE_DIR] → the app built into an image on the unik daemon
//   release  BUILD_DIR                                        → YAML: default_process_types.web runs the launcher
// and, for operators, `package OUT_DIR`: a self-contained buildpack folder (zip it for cf create-buildpack).
// BUILD_DIR is the app as pushed: untrusted. It is read only through unik's packer and its
// unik.yaml reader, and written only in .profile.d when the lifecycle gives no PROFILE_DIR.
import { createHash } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { cp, lstat, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import type { ImageJson } from '../../../src/api/types.js';
import { UnikApiError, packDirectory, type UnikClient } from '../../../src/client/index.js';
import { readAppManifest } from '../../../src/compilers/app-manifest.js';
import { compilers, detectCompiler } from '../../../src/compilers/index.js';
import { BuildpackError, appName, clientFor, daemonFrom, explain, imageName } from './common.js';
import { BUILDPACK_ENTRY, LAUNCH_ENTRY, RUNTIME_ROOT, copyModules, copyNode } from './runtime.js';

/** the web process: on PATH through the .profile.d script finalize writes */
export const LAUNCHER = 'unik-cf-launch';
/** the guest port when unik.yaml declares none: what the examples listen on */
export const DEFAULT_APP_PORT = 8080;

const LAUNCH_SHIM = `#!/usr/bin/env bash
# Cloud Foundry's web process for a unik droplet (the buildpack's release names it): runs the
# app's unikernel. Written by the unik buildpack; the Node runtime beside it came from it too.
here="$(cd -P -- "$(dirname -- "\${BASH_SOURCE[0]}")/.." && pwd)"
exec "$here/node" "$here/lib/${LAUNCH_ENTRY}" "$here"
`;

const say = (line: string) => process.stdout.write(`-----> ${line}\n`);
const detail = (line: string) => process.stdout.write(`       ${line}\n`);

function need(args: string[], min: number, max: number, usage: string): string[] {
  if (args.length < min || args.length > max || args.some((a) => !a)) throw new BuildpackError(`usage: ${usage}`);
  return args;
}

/** DEPS_DIR/DEPS_IDX, a real folder (the lifecycle makes it; made here if it did not). */
async function depsOf(depsDir: string, idx: string): Promise<string> {
  if (!/^\d{1,4}$/.test(idx)) throw new BuildpackError(`DEPS_IDX ${JSON.stringify(idx.slice(0, 20))} is not an index`);
  const dir = join(depsDir, idx);
  const st = await lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw new BuildpackError(`${dir} is not a folder`);
  if (!st) await mkdir(dir);
  return dir;
}

async function detect(args: string[]): Promise<number> {
  const [buildDir] = need(args, 1, 1, 'detect BUILD_DIR');
  if (!(await lstat(buildDir!).then((s) => s.isDirectory(), () => false))) return 1;
  // a unik.yaml says it is for unik, even one the daemon will refuse (staging then says why)
  const hasManifest = (await Promise.all(['unik.yaml', 'unik.yml'].map((f) => lstat(join(buildDir!, f)).then(() => true, () => false)))).some(Boolean);
  let language = hasManifest ? await readAppManifest(buildDir!).then((m) => m.language, () => undefined) : undefined;
  // the daemon's own detection, by marker files (existence only: nothing is read)
  language ??= await detectCompiler(buildDir!).then((c) => c.language, () => undefined);
  if (!hasManifest && !language) return 1;
  // printed only when it is a language unik knows: unik.yaml's text never reaches the output
  process.stdout.write(`${language && compilers.some((c) => c.language === language) ? `unik-${language}` : 'unik'}\n`);
  return 0;
}

async function supply(args: string[]): Promise<void> {
  const [, , depsDir, idx] = need(args, 4, 4, 'supply BUILD_DIR CACHE_DIR DEPS_DIR DEPS_IDX');
  const dest = await depsOf(depsDir!, idx!);
  say(`unik buildpack: the launcher and Node ${process.version} into deps/${idx}`);
  await copyNode(join(dest, 'node'));
  await copyModules(RUNTIME_ROOT, [LAUNCH_ENTRY], join(dest, 'lib'));
  await mkdir(join(dest, 'bin'), { recursive: true });
  await writeFile(join(dest, 'bin', LAUNCHER), LAUNCH_SHIM, { mode: 0o755 });
  // the contract's config.yml: the name later buildpacks see
  await writeFile(join(dest, 'config.yml'), `name: unik\nconfig:\n  launcher: bin/${LAUNCHER}\n`);
}

/**
 * Where the .profile.d script goes: the lifecycle's PROFILE_DIR (sourced as ../profile.d at
 * launch), else the app's own .profile.d, which must be a real folder: the buildpack never
 * writes through a link the app brought.
 */
async function profileScript(buildDir: string, profileDir: string | undefined): Promise<string> {
  const dir = profileDir ?? join(buildDir, '.profile.d');
  const st = await lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw new BuildpackError(`${profileDir ? 'PROFILE_DIR' : "the app's .profile.d"} is not a folder (a link or a file): nothing is written through it`);
  if (!st) await mkdir(dir);
  return join(dir, 'unik.sh');
}

/** Writes a file that must not be a link (O_NOFOLLOW), replacing a regular file of that name. */
async function writeNoFollow(path: string, text: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644).catch((e: NodeJS.ErrnoException) => {
    throw new BuildpackError(e.code === 'ELOOP' ? `${path} is a link: nothing is written through it` : `cannot write ${path}: ${e.message}`);
  });
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}

/**
 * A digest of what is uploaded: each entry's path, type, mode, link target and content, sorted;
 * file times do not count, so the same source staged again names the same image.
 */
async function sourceDigest(tarball: string): Promise<string> {
  const entries: string[] = [];
  await tar.t({
    file: tarball,
    onReadEntry: (e) => {
      const h = createHash('sha256');
      e.on('data', (d: Buffer) => h.update(d));
      e.on('end', () => entries.push(JSON.stringify([e.path, e.type, e.mode, e.linkpath ?? '', h.digest('hex')])));
    },
  });
  return createHash('sha256').update(entries.sort().join('\n')).digest('hex');
}

async function existingImage(client: UnikClient, name: string): Promise<ImageJson | undefined> {
  try {
    return await client.images.get(name);
  } catch (e) {
    if (e instanceof UnikApiError && e.status === 404) return undefined;
    throw e;
  }
}

async function finalize(args: string[]): Promise<void> {
  const [buildDir, , depsDir, idx, profileDir] = need(args, 4, 5, 'finalize BUILD_DIR CACHE_DIR DEPS_DIR DEPS_IDX [PROFILE_DIR]');
  const dest = await depsOf(depsDir!, idx!);
  if (!existsSync(join(dest, 'bin', LAUNCHER))) throw new BuildpackError(`deps/${idx} has no launcher`, 'bin/supply runs before bin/finalize');
  const env = process.env;
  const daemon = daemonFrom(env);
  const client = clientFor(daemon, env);
  // settled before the build, so an app dir that would have it written elsewhere fails first
  const profile = await profileScript(buildDir!, profileDir);
  const app = appName(env);
  say(`unik buildpack: building ${JSON.stringify(app)} on the unik daemon at ${daemon.address} (from ${daemon.source})`);
  const tarball = await packDirectory(buildDir!);
  let image: ImageJson;
  try {
    const name = imageName(app, await sourceDigest(tarball));
    const found = await existingImage(client, name);
    if (found) detail(`image ${name} is on the daemon already (the same source): not built again`);
    image = found ?? (await client.images.build({ name, tarPath: tarball }, (p) => detail(`${p.Step}: ${p.Message}`)));
  } finally {
    await rm(tarball, { force: true });
  }
  // the daemon read the same unik.yaml and accepted it
  const appPort = (await readAppManifest(buildDir!).catch(() => undefined))?.ports?.[0] ?? DEFAULT_APP_PORT;
  // no secret goes here: the token is read from the environment at launch
  const launch = { image: image.Name, daemon: daemon.address, app, appPort };
  await writeFile(join(dest, 'launch.json'), `${JSON.stringify(launch, null, 2)}\n`);
  await writeNoFollow(profile, `# the unik buildpack: its launcher (the web process) on PATH\nexport PATH="$DEPS_DIR/${idx}/bin:$PATH"\n`);
  say(`unik buildpack: image ${image.Name} (${image.Language}, ${image.SizeMb} MB); the web process runs it, guest port ${appPort} behind $PORT`);
}

function release(args: string[]): void {
  need(args, 1, 1, 'release BUILD_DIR');
  process.stdout.write(`---\ndefault_process_types:\n  web: ${LAUNCHER}\n`);
}

/** A buildpack folder that holds all it runs: bin/, node, lib/ (the compiled modules and npm packages). */
async function pack(args: string[]): Promise<void> {
  const [out] = need(args, 1, 1, 'package OUT_DIR');
  const bin = join(RUNTIME_ROOT, 'integrations', 'cloudfoundry', 'bin');
  if (!existsSync(bin)) throw new BuildpackError('package runs from a unik checkout (integrations/cloudfoundry/bin is not here)');
  if (existsSync(out!)) throw new BuildpackError(`${out} exists already`, 'give a new folder');
  await mkdir(out!, { recursive: true });
  await cp(bin, join(out!, 'bin'), { recursive: true });
  await copyNode(join(out!, 'node'));
  await copyModules(RUNTIME_ROOT, [BUILDPACK_ENTRY, LAUNCH_ENTRY], join(out!, 'lib'));
  const { version } = JSON.parse(await readFile(join(RUNTIME_ROOT, 'package.json'), 'utf8')) as { version?: string };
  await writeFile(join(out!, 'VERSION'), `${version ?? '0.0.0'}\n`);
  say(`unik buildpack ${version} (Node ${process.version}) in ${out}: zip its contents for cf create-buildpack`);
}

async function main(): Promise<number> {
  const [script, ...args] = process.argv.slice(2);
  switch (script) {
    case 'detect':
      return detect(args);
    case 'supply':
      await supply(args);
      return 0;
    case 'finalize':
      await finalize(args);
      return 0;
    case 'release':
      release(args);
      return 0;
    case 'package':
      await pack(args);
      return 0;
    default:
      throw new BuildpackError(`unknown script ${JSON.stringify(script ?? '')}`, 'detect, supply, finalize, release or package');
  }
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (e: unknown) => {
    process.stderr.write(`unik buildpack: ${explain(e)}\n`);
    process.exit(1);
  },
);
