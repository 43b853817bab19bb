// Export commands: export (an image as a bootable disk for a platform), config-drive.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { FORMATS as EXPORT_FORMATS } from '../../export/formats.js';
import { contextFor } from '../context.js';
import { CliError } from '../errors.js';
import { collect, parseEnvFlags } from '../parse.js';
import { clientCommand, withSigint } from './common.js';

const FORMATS: readonly string[] = EXPORT_FORMATS;

export function registerExportCommands(program: Command): void {
  clientCommand(program, 'export', 'write an image as a bootable disk for a platform (see the README for each platform)')
    .argument('<IMAGE>', 'image name or id')
    .requiredOption('--format <FORMAT>', `one of ${FORMATS.join(', ')}`)
    .option('--firmware <bios|uefi|both>', 'what boots it', 'both')
    .requiredOption('-o, --output <FILE>', 'where to write it')
    .action(async (image: string, flags: { format: string; firmware: string; output: string }, cmd: Command) => {
      if (!FORMATS.includes(flags.format)) throw new CliError(`invalid --format "${flags.format}"`, `one of ${FORMATS.join(', ')}`);
      if (!['bios', 'uefi', 'both'].includes(flags.firmware)) throw new CliError(`invalid --firmware "${flags.firmware}"`, 'one of bios, uefi, both');
      const { client } = contextFor(cmd);
      const partial = `${flags.output}.part`;
      await withSigint(async (signal) => {
        try {
          const body = await client.images.export(image, flags.format, flags.firmware, signal);
          await pipeline(Readable.fromWeb(body as import('node:stream/web').ReadableStream), createWriteStream(partial));
          await rename(partial, flags.output);
        } finally {
          await rm(partial, { force: true });
        }
      });
      process.stdout.write(`${flags.output}\n`);
    });

  program
    .command('config-drive')
    .description("write a config drive (a small FAT disk) that an exported image reads at boot: env, args, a static address")
    .requiredOption('-o, --output <FILE>', 'where to write it')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect)
    .option('--arg <ARG>', "an argument, replacing the image's (repeatable)", collect)
    .option('--hostname <NAME>', 'host name')
    .option('--ip <A.B.C.D/P>', 'a static address (default: DHCP)')
    .option('--gateway <IP>', 'the gateway, with --ip')
    .option('--dns <IP>', 'the DNS server, with --ip')
    .option('--vol <LABEL:/PATH[:ext4|vfat]>', 'mount the attached disk whose filesystem has this label (e.g. made by unik create-volume NAME) at PATH (repeatable)', collect)
    .action(async (flags: { output: string; env?: string[]; arg?: string[]; hostname?: string; ip?: string; gateway?: string; dns?: string; vol?: string[] }) => {
      if (flags.ip && !(flags.gateway && flags.dns)) throw new CliError('--ip needs --gateway and --dns');
      // the FAT and cpio writers load only for this command
      const { parseDriveVolume, writeConfigDrive } = await import('../../export/config-drive.js');
      await writeConfigDrive(flags.output, {
        env: parseEnvFlags(flags.env ?? []),
        ...(flags.arg ? { argv: flags.arg } : {}),
        ...(flags.hostname ? { hostname: flags.hostname } : {}),
        ...(flags.ip ? { net: { ip: flags.ip, gateway: flags.gateway!, dns: flags.dns! } } : {}),
        volumes: (flags.vol ?? []).map((v) => {
          try {
            return parseDriveVolume(v);
          } catch (e) {
            throw new CliError((e as Error).message);
          }
        }),
      });
      process.stdout.write(`${flags.output}\n`);
    });
}
