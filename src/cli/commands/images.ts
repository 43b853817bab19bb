// Image commands: push/build, unikernels, describe-image, rmu.
import { stat, rm } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { packDirectory } from '../../client/tarball.js';
import { contextFor } from '../context.js';
import { IMAGE_HEAD, collate, humanSize, imageRow, printJson, printTable } from '../output.js';
import { collect, parseMountPoints } from '../parse.js';
import { ProgressPrinter } from '../progress.js';
import { encodeRegistryAuth } from '../../client/hub.js';
import { CliError } from '../errors.js';
import { credentialsFor, registryOf } from '../hub-auth.js';
import { clientCommand, forEachItem, itemsFrom, legacyOption, oneItem, withSigint } from './common.js';

interface BuildFlags {
  language?: string;
  lang?: string;
  provider?: string;
  arch?: string;
  base?: string;
  args?: string;
  mountpoint?: string[];
  force?: boolean;
  json?: boolean;
  fromImage?: string;
  insecure?: boolean;
  slim?: boolean;
  probe?: string;
  keep?: string[];
}

function addBuildFlags(cmd: Command): Command {
  return cmd
    .option('--language <LANG>', 'language of the app (default: detected by the daemon)')
    .addOption(new Option('--lang <LANG>', 'same as --language').hideHelp())
    .option('--provider <PROVIDER>', 'provider to build for (daemon default: qemu)')
    .option('--arch <ARCH>', "processor architecture: amd64 or arm64 (default: the daemon host's)")
    .option('--base <BASE>', 'unikernel base (daemon default: linux)')
    .option('--args <ARGS>', 'arguments baked into the image, one string split on spaces')
    .option('--mountpoint <PATH>', 'an absolute path where the app expects a volume (repeatable)', collect)
    .option('--force', 'replace an existing image with the same name')
    .option('--from-image <REF>', 'build from a container image: REGISTRY/REPO[:TAG], docker-archive:FILE[:REF] (docker/podman save), oci:DIR[:TAG] (an OCI layout)')
    .option('--insecure', 'with --from-image: plain HTTP to a registry that is not on this machine')
    .option('--slim', 'with --from-image: keep only the files the app opens, learned by running it once under --probe')
    .option('--probe <URL>', "with --slim: what exercises the app, http://:PORT/PATH or tcp://:PORT (default: tcp to the image's first port)")
    .option('--keep <PATH>', 'with --slim: keep this file or folder of the image whether opened or not (repeatable)', collect)
    .option('--json', 'print the built image as JSON (progress goes to stderr)');
}

/**
 * What --from-image sends: a registry reference as is (with the stored credentials), an archive
 * of this machine as the upload, an OCI layout folder packed as a .tar.gz. The daemon reads
 * nothing of its own disk for a client, so a remote daemon works the same.
 */
async function imageUpload(from: string): Promise<{ fromImage: string; tag?: string; tarPath?: string; packed?: boolean; registryAuth?: string }> {
  const m = /^(docker-archive|oci):([^:]*)(?::(.+))?$/.exec(from);
  if (!m) {
    const auth = credentialsFor(registryOf(from));
    return { fromImage: from, ...(auth ? { registryAuth: encodeRegistryAuth(auth) } : {}) };
  }
  const [, kind, path, tag] = m as unknown as [string, 'docker-archive' | 'oci', string, string | undefined];
  if (!path) throw new CliError(`--from-image ${kind}: names no path`, `use ${kind}:PATH${kind === 'oci' ? '[:TAG]' : '[:REF]'}`);
  const st = await stat(path).catch(() => undefined);
  if (kind === 'docker-archive') {
    if (!st?.isFile()) throw new CliError(`${path} is not a file`, 'give the archive docker save / podman save wrote');
    return { fromImage: kind, ...(tag ? { tag } : {}), tarPath: path };
  }
  if (!st?.isDirectory()) throw new CliError(`${path} is not a directory`, 'give an OCI image layout folder (oci-layout, index.json, blobs/)');
  return { fromImage: kind, ...(tag ? { tag } : {}), tarPath: await packDirectory(path), packed: true };
}

async function buildImage(cmd: Command, name: string, dir: string | undefined, flags: BuildFlags): Promise<void> {
  const mounts = parseMountPoints(flags.mountpoint ?? []);
  if (dir && flags.fromImage) throw new CliError('give PATH or --from-image, not both');
  if (!dir && !flags.fromImage) throw new CliError('missing PATH', 'give the app directory, or --from-image REF');
  if ((flags.probe || flags.keep?.length) && !flags.slim) throw new CliError('--probe and --keep go with --slim');
  if (flags.keep?.some((k) => k.includes(','))) throw new CliError('a --keep path cannot hold a comma');
  const { client, target } = contextFor(cmd);
  const out = flags.json ? process.stderr : process.stdout;
  const progress = new ProgressPrinter(out);
  const from = flags.fromImage ? await imageUpload(flags.fromImage) : undefined;
  const tarPath = from ? from.tarPath : await packDirectory(dir!);
  try {
    if (tarPath) {
      const { size } = await stat(tarPath);
      progress.event({ Step: 'upload', Message: `sending ${dir ?? flags.fromImage} (${humanSize(size)}) to ${target.address}` });
    } else progress.event({ Step: 'source', Message: `${target.address} builds from ${flags.fromImage}` });
    const image = await withSigint((signal) =>
      client.images.build(
        {
          name,
          ...(tarPath ? { tarPath } : {}),
          ...(from ? { fromImage: from.fromImage, ...(from.tag ? { tag: from.tag } : {}), ...(from.registryAuth ? { registryAuth: from.registryAuth } : {}), insecure: flags.insecure ?? false } : {}),
          base: flags.base,
          language: flags.language ?? flags.lang,
          provider: flags.provider,
          arch: flags.arch,
          args: flags.args,
          mounts,
          force: flags.force ?? false,
          ...(flags.slim ? { slim: true, ...(flags.probe ? { probe: flags.probe } : {}), ...(flags.keep ? { keep: flags.keep } : {}) } : {}),
          signal,
        },
        (p) => progress.event(p),
      ),
    );
    progress.finish();
    if (flags.json) printJson(image);
    else printTable(IMAGE_HEAD, [imageRow(image)]);
  } finally {
    progress.finish();
    // the user's own archive stays; what this command packed goes
    if (tarPath && (!from || from.packed)) await rm(tarPath, { force: true });
  }
}

export function registerImageCommands(program: Command): void {
  addBuildFlags(
    clientCommand(program, 'push', 'pack the app directory PATH (or take a container image, --from-image) and build it into the unikernel NAME')
      .alias('p')
      .argument('<NAME>', 'image name')
      .argument('[PATH]', 'application directory'),
  ).action(async (name: string, dir: string | undefined, flags: BuildFlags, cmd: Command) => buildImage(cmd, name, dir, flags));

  addBuildFlags(
    clientCommand(program, 'build', 'build a unikernel (2016 form of push)')
      .requiredOption('--name <NAME>', 'image name')
      .requiredOption('--path <PATH>', 'application directory'),
  ).action(async (flags: BuildFlags & { name: string; path: string }, cmd: Command) =>
    buildImage(cmd, flags.name, flags.path, flags),
  );

  clientCommand(program, 'unikernels', 'list unikernel images')
    .aliases(['images', 'u'])
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const images = await contextFor(cmd).client.images.all();
      images.sort((a, b) => collate(a.Name, b.Name));
      if (flags.json) printJson(images);
      else printTable(IMAGE_HEAD, images.map((i) => imageRow(i)));
    });

  clientCommand(program, 'describe-image', 'print an image as JSON')
    .argument('[IMAGE]', 'image name')
    .addOption(legacyOption('--image <IMAGE>', 'image name (2016 form)'))
    .action(async (image: string | undefined, flags: { image?: string }, cmd: Command) => {
      printJson(await contextFor(cmd).client.images.get(oneItem(image, flags.image, 'image')));
    });

  clientCommand(program, 'rmu', 'delete unikernel images')
    .aliases(['rmi', 'delete-unikernel', 'delete-image'])
    .argument('[IMAGE...]', 'image names')
    .option('-f, --force', 'delete even if instances use the image')
    .addOption(legacyOption('--image <IMAGE>', 'image name (2016 form)', collect))
    .action(async (names: string[], flags: { force?: boolean; image?: string[] }, cmd: Command) => {
      const items = itemsFrom(names, flags.image, 'image');
      const { client } = contextFor(cmd);
      await forEachItem(items, (name) => client.images.delete(name, flags.force ?? false));
    });
}
