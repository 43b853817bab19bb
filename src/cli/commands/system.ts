// Daemon-wide commands: compilers, providers, describe-compiler, and `target` (client config).
import { Option, type Command } from 'commander';
import { contextFor } from '../context.js';
import { CliError } from '../errors.js';
import { printJson, printTable } from '../output.js';
import { parsePositiveInt, splitCompilerName } from '../parse.js';
import { DEFAULT_PORT, resolveTarget, splitHostPort, withPort, writeTarget, type Target } from '../target.js';
import { clientCommand } from './common.js';

function printList(items: string[], json: boolean | undefined): void {
  if (json) printJson(items);
  else for (const item of items) process.stdout.write(`${item}\n`);
}

function describeSource(t: Target): string {
  switch (t.source) {
    case 'flag':
      return 'from --host';
    case 'env':
      return 'from $UNIK_HOST';
    case 'config':
      return `from ${t.configPath}`;
    default:
      return 'default';
  }
}

interface TargetFlags {
  host?: string;
  port?: string;
  show?: boolean;
}

async function targetAction(positional: string | undefined, flags: TargetFlags, cmd: Command): Promise<void> {
  const root = cmd.parent;
  const rootOpts = root?.opts<{ host?: string; clientConfig?: string }>() ?? {};
  const host = flags.host ?? positional;
  if (flags.show || !host) {
    const t = resolveTarget({ flag: rootOpts.host, configPath: rootOpts.clientConfig });
    process.stdout.write(`${t.address} (${describeSource(t)})\n`);
    return;
  }
  // `unik target 10.0.0.5:3000` keeps its port unless --port says otherwise.
  const address =
    flags.port === undefined
      ? withPort(host, DEFAULT_PORT)
      : withPort(splitHostPort(host).host, parsePositiveInt(flags.port, '--port'));
  const configPath = resolveTarget({ flag: address, configPath: rootOpts.clientConfig }).configPath;
  await writeTarget(address, configPath);
  process.stdout.write(`target set to ${address} (written to ${configPath})\n`);
  if (process.env.UNIK_HOST) process.stderr.write(`note: $UNIK_HOST=${process.env.UNIK_HOST} still overrides it\n`);
}

export function registerSystemCommands(program: Command): void {
  clientCommand(program, 'compilers', 'list the compilers the daemon has (base-language-provider)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) =>
      printList(await contextFor(cmd).client.availableCompilers(), flags.json),
    );

  clientCommand(program, 'providers', 'list the providers the daemon has, whether each works there, and why not')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const list = await contextFor(cmd).client.providers();
      if (flags.json) return printJson(list);
      printTable(['NAME', 'INFRASTRUCTURE', 'AVAILABLE', 'DETAILS'], list.map((p) => [p.Name, p.Infrastructure, p.Available ? 'yes' : 'no', p.Reason]));
    });

  clientCommand(program, 'describe-compiler', 'print the usage guide of a compiler')
    .argument('[COMPILER]', 'compiler as listed by "unik compilers", e.g. linux-go-qemu')
    .option('--base <BASE>', 'unikernel base', 'linux')
    .option('--language <LANG>', 'language')
    .addOption(new Option('--lang <LANG>', 'same as --language').hideHelp())
    .option('--provider <PROVIDER>', 'provider', 'qemu')
    .action(
      async (
        compiler: string | undefined,
        flags: { base: string; language?: string; lang?: string; provider: string },
        cmd: Command,
      ) => {
        let { base, provider } = flags;
        let lang = flags.language ?? flags.lang;
        if (compiler) {
          const parts = splitCompilerName(compiler);
          if (!parts) throw new CliError(`invalid compiler "${compiler}": expected BASE-LANGUAGE-PROVIDER`, 'see: unik compilers');
          ({ base, lang, provider } = parts);
        }
        if (!lang) throw new CliError('missing --language', 'e.g. unik describe-compiler --language go, or unik describe-compiler linux-go-qemu');
        const text = await contextFor(cmd).client.describeCompiler(base, lang, provider);
        process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      },
    );

  program
    .command('target')
    .alias('t')
    .description('set the daemon the CLI talks to, or show it')
    .argument('[HOST]', 'daemon host (same as --host)')
    .option('--host <HOST>', 'daemon host name or IP')
    .option('--port <PORT>', `daemon port (default: ${DEFAULT_PORT})`)
    .option('--show', 'print the current target and where it comes from')
    .action(targetAction);
}
