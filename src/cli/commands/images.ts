// Image commands: push/build, unikernels, describe-image, rmu.
import { stat, rm } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { packDirectory } from '../../client/tarball.js';
import { contextFor } from '../context.js';
import { IMAGE_HEAD, humanSize, imageRow, printJson, printTable } from '../output.js';
import { collect, parseMountPoints } from '../parse.js';
import { ProgressPrinter } from '../progress.js';
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
    .option('--json', 'print the built image as JSON (progress goes to stderr)');
}

async function buildImage(cmd: Command, name: string, dir: string, flags: BuildFlags): Promise<void> {
  const mounts = parseMountPoints(flags.mountpoint ?? []);
  const { client, target } = contextFor(cmd);
  const out = flags.json ? process.stderr : process.stdout;
  const progress = new ProgressPrinter(out);
  const tarPath = await packDirectory(dir);
  try {
    const { size } = await stat(tarPath);
    progress.event({ Step: 'upload', Message: `sending ${dir} (${humanSize(size)}) to ${target.address}` });
    const image = await withSigint((signal) =>
      client.images.build(
        {
          name,
          tarPath,
          base: flags.base,
          language: flags.language ?? flags.lang,
          provider: flags.provider,
          arch: flags.arch,
          args: flags.args,
          mounts,
          force: flags.force ?? false,
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
    await rm(tarPath, { force: true });
  }
}

export function registerImageCommands(program: Command): void {
  addBuildFlags(
    clientCommand(program, 'push', 'pack the app directory PATH and build it into the unikernel NAME')
      .alias('p')
      .argument('<NAME>', 'image name')
      .argument('<PATH>', 'application directory'),
  ).action(async (name: string, dir: string, flags: BuildFlags, cmd: Command) => buildImage(cmd, name, dir, flags));

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
      images.sort((a, b) => a.Name.localeCompare(b.Name));
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
