// Volume commands: volumes, create-volume, describe-volume, delete-volume, attach-volume, detach-volume.
import { open, rm, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import type { VolumeType } from '../../api/types.js';
import { packDirectory } from '../../client/tarball.js';
import { contextFor } from '../context.js';
import { CliError } from '../errors.js';
import { VOLUME_HEAD, collate, humanSize, printJson, printTable, volumeRow } from '../output.js';
import { collect, parseMountPoint, parsePositiveInt } from '../parse.js';
import { ProgressPrinter } from '../progress.js';
import { clientCommand, forEachItem, itemsFrom, legacyOption, oneItem, withSigint } from './common.js';

export const VOLUME_TYPES: readonly VolumeType[] = ['ext4', 'ext2', 'fat'];

export interface CreateVolumeFlags {
  name?: string;
  size?: string;
  data?: string;
  type?: string;
  raw?: boolean;
  provider?: string;
  json?: boolean;
}

export interface CreateVolumePlan {
  name: string;
  sizeMb?: number;
  type: VolumeType;
  raw: boolean;
  provider?: string;
  /** --data as given: a directory, a .tar/.tar.gz, or (raw) a filesystem image. */
  data?: string;
}

/** The same value given twice (positional and flag) must agree. */
function once(positional: string | undefined, flag: string | undefined, what: string): string | undefined {
  if (positional !== undefined && flag !== undefined && positional !== flag) {
    throw new CliError(`${what} is given twice ("${positional}" and "${flag}")`, 'give it once');
  }
  return positional ?? flag;
}

/** Checks `create-volume [NAME] [SIZE_MB]` and its flags before any call to the daemon. */
export function planCreateVolume(name: string | undefined, sizeArg: string | undefined, flags: CreateVolumeFlags): CreateVolumePlan {
  const volume = once(name, flags.name, 'the volume name (NAME and --name)');
  if (!volume) throw new CliError('missing volume name', 'e.g. unik create-volume data 64');
  const size = once(sizeArg, flags.size, 'the size (SIZE_MB and --size)');
  const type = flags.type ?? 'ext4';
  if (!(VOLUME_TYPES as readonly string[]).includes(type)) {
    throw new CliError(`invalid --type "${type}": expected one of ${VOLUME_TYPES.join(', ')}`);
  }
  const plan: CreateVolumePlan = { name: volume, type: type as VolumeType, raw: flags.raw ?? false };
  if (size !== undefined) plan.sizeMb = parsePositiveInt(size, sizeArg !== undefined ? 'SIZE_MB' : '--size');
  if (flags.data !== undefined) {
    if (!flags.data) throw new CliError('invalid --data "": expected a directory or a file');
    plan.data = flags.data;
  }
  if (flags.provider) plan.provider = flags.provider;
  if (plan.raw && plan.data === undefined) {
    throw new CliError('--raw needs --data FILE', 'with --raw, --data is a filesystem image that becomes the disk as is');
  }
  if (plan.sizeMb === undefined && plan.data === undefined) {
    throw new CliError(
      `missing the size of volume ${volume}`,
      `give SIZE_MB for an empty volume (unik create-volume ${volume} 64) or --data DIR|TARFILE to fill it`,
    );
  }
  return plan;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const USTAR_OFFSET = 257;

/**
 * What --data points at: a directory (packed before upload), or a file sent as is. Without
 * --raw the file must look like a tar or gzip archive, so a disk image without --raw (or a
 * stray file) fails here rather than after a long upload.
 */
export async function inspectVolumeData(path: string, raw: boolean): Promise<'directory' | 'file'> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`--data ${path}: ${code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  if (st.isDirectory()) {
    if (raw) throw new CliError(`--data ${path} is a directory`, 'with --raw, --data is a filesystem image file; drop --raw to pack the directory');
    return 'directory';
  }
  if (!st.isFile()) throw new CliError(`--data ${path}: not a regular file or directory`);
  if (st.size === 0) throw new CliError(`--data ${path} is empty`);
  if (!raw) {
    const head = Buffer.alloc(512);
    const fh = await open(path, 'r');
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(head, 0, head.length, 0));
    } finally {
      await fh.close();
    }
    const gzip = n >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
    const tarball = n >= USTAR_OFFSET + 5 && head.toString('latin1', USTAR_OFFSET, USTAR_OFFSET + 5) === 'ustar';
    if (!gzip && !tarball) {
      throw new CliError(
        `--data ${path} is not a .tar or .tar.gz archive`,
        'give a directory or a tar archive, or add --raw if the file is a filesystem image',
      );
    }
  }
  return 'file';
}

async function createVolumeAction(name: string | undefined, sizeArg: string | undefined, flags: CreateVolumeFlags, cmd: Command): Promise<void> {
  const plan = planCreateVolume(name, sizeArg, flags);
  const kind = plan.data === undefined ? undefined : await inspectVolumeData(plan.data, plan.raw);
  const { client, target } = contextFor(cmd);
  const progress = new ProgressPrinter(flags.json ? process.stderr : process.stdout);
  let upload: string | undefined;
  let temporary = false;
  try {
    if (plan.data !== undefined) {
      temporary = kind === 'directory';
      upload = temporary ? await packDirectory(plan.data) : plan.data;
      const { size } = await stat(upload);
      progress.event({ Step: 'upload', Message: `sending ${plan.data} (${humanSize(size)}) to ${target.address}` });
    }
    const vol = await withSigint((signal) =>
      client.volumes.create({
        name: plan.name,
        sizeMb: plan.sizeMb,
        type: plan.type,
        dataPath: upload,
        raw: plan.raw,
        provider: plan.provider,
        signal,
      }),
    );
    progress.finish();
    if (flags.json) printJson(vol);
    else printTable(VOLUME_HEAD, [volumeRow(vol)]);
  } finally {
    progress.finish();
    if (temporary && upload) await rm(upload, { force: true });
  }
}

export interface AttachFlags {
  volume?: string;
  instance?: string;
  mountPoint?: string;
}

/** `attach-volume VOLUME INSTANCE MOUNTPOINT` or the 2016 flags, checked before any call. */
export function planAttach(
  volume: string | undefined,
  instance: string | undefined,
  mountPoint: string | undefined,
  flags: AttachFlags,
): { volume: string; instance: string; mountPoint: string } {
  const mp = mountPoint ?? flags.mountPoint;
  if (!mp) throw new CliError('missing mount point', 'give the absolute path to mount the volume at, e.g. /data');
  return {
    volume: oneItem(volume, flags.volume, 'volume'),
    instance: oneItem(instance, flags.instance, 'instance'),
    mountPoint: parseMountPoint(mp, mountPoint !== undefined ? 'MOUNTPOINT' : '--mountPoint'),
  };
}

export function registerVolumeCommands(program: Command): void {
  clientCommand(program, 'volumes', 'list volumes')
    .alias('lv')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const list = await contextFor(cmd).client.volumes.all();
      list.sort((a, b) => collate(a.Name, b.Name));
      if (flags.json) printJson(list);
      else printTable(VOLUME_HEAD, list.map((v) => volumeRow(v)));
    });

  clientCommand(program, 'create-volume', 'create a volume: empty (SIZE_MB) or filled from --data')
    .alias('cv')
    .argument('[NAME]', 'volume name')
    .argument('[SIZE_MB]', 'size in MB (needed without --data)')
    .option('--size <MB>', 'size in MB (same as SIZE_MB)')
    .option('--data <DIR|TARFILE>', 'fill the volume: a directory (packed and uploaded) or a .tar/.tar.gz; with --raw, a filesystem image')
    .option('--type <TYPE>', `filesystem: ${VOLUME_TYPES.join(', ')} (with --raw, the one the image holds)`, 'ext4')
    .option('--raw', 'upload --data as the disk image itself')
    .option('--provider <PROVIDER>', 'provider the volume is for (daemon default: qemu)')
    .option('--json', 'print the volume as JSON')
    .addOption(legacyOption('--name <NAME>', 'volume name (2016 form)'))
    .action(createVolumeAction);

  clientCommand(program, 'describe-volume', 'print a volume as JSON')
    .argument('[VOLUME]', 'volume name or id')
    .addOption(legacyOption('--volume <VOLUME>', 'volume (2016 form)'))
    .action(async (vol: string | undefined, flags: { volume?: string }, cmd: Command) => {
      printJson(await contextFor(cmd).client.volumes.get(oneItem(vol, flags.volume, 'volume')));
    });

  clientCommand(program, 'delete-volume', 'delete volumes')
    .alias('rmv')
    .argument('[VOLUME...]', 'volume names or ids')
    .option('-f, --force', 'delete even if attached to an instance')
    .addOption(legacyOption('--volume <VOLUME>', 'volume (2016 form)', collect))
    .action(async (names: string[], flags: { force?: boolean; volume?: string[] }, cmd: Command) => {
      const items = itemsFrom(names, flags.volume, 'volume');
      const { client } = contextFor(cmd);
      await forEachItem(items, (name) => client.volumes.delete(name, flags.force ?? false));
    });

  clientCommand(program, 'attach-volume', 'attach a volume to a stopped instance at a mount point')
    .aliases(['av', 'attach'])
    .argument('[VOLUME]', 'volume name or id')
    .argument('[INSTANCE]', 'instance name or id (must be stopped)')
    .argument('[MOUNTPOINT]', 'absolute path in the instance, e.g. /data')
    .addOption(legacyOption('--volume <VOLUME>', 'volume (2016 form)'))
    .addOption(legacyOption('--instance <INSTANCE>', 'instance (2016 form)'))
    .addOption(legacyOption('--mountPoint <PATH>', 'mount point (2016 form)'))
    .action(
      async (vol: string | undefined, inst: string | undefined, mp: string | undefined, flags: AttachFlags, cmd: Command) => {
        const plan = planAttach(vol, inst, mp, flags);
        const answer = await contextFor(cmd).client.volumes.attach(plan.volume, plan.instance, plan.mountPoint);
        process.stdout.write(`${answer || plan.volume}\n`);
      },
    );

  clientCommand(program, 'detach-volume', 'detach a volume from its instance')
    .aliases(['dv', 'detach'])
    .argument('[VOLUME]', 'volume name or id')
    .addOption(legacyOption('--volume <VOLUME>', 'volume (2016 form)'))
    .action(async (vol: string | undefined, flags: { volume?: string }, cmd: Command) => {
      const name = oneItem(vol, flags.volume, 'volume');
      const answer = await contextFor(cmd).client.volumes.detach(name);
      process.stdout.write(`${answer || name}\n`);
    });
}
