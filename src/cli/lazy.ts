// Loads only the command module that the command line names: the nine modules and what they
// import are half of the CLI's own start-up. Anything else (help, no command, an unknown name)
// gets the whole tree from program.ts, so every message stays the same.
import type { Command } from 'commander';
import { rootCommand } from './root.js';

type Register = (program: Command) => void;

/** Each command module, by file. */
export const MODULES: Record<string, () => Promise<Register>> = {
  daemon: async () => (await import('./commands/daemon.js')).registerDaemonCommand,
  images: async () => (await import('./commands/images.js')).registerImageCommands,
  instances: async () => (await import('./commands/instances.js')).registerInstanceCommands,
  volumes: async () => (await import('./commands/volumes.js')).registerVolumeCommands,
  networks: async () => (await import('./commands/networks.js')).registerNetworkCommands,
  export: async () => (await import('./commands/export.js')).registerExportCommands,
  hub: async () => (await import('./commands/hub.js')).registerHubCommands,
  system: async () => (await import('./commands/system.js')).registerSystemCommands,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctorCommand,
};

/** Which module registers each command name and alias (test/unit/cli-startup.test.ts holds it to program.ts). */
export const COMMAND_MODULE: Record<string, string> = {
  daemon: 'daemon',
  push: 'images', p: 'images', build: 'images', unikernels: 'images', images: 'images', u: 'images', 'describe-image': 'images', rmu: 'images', rmi: 'images', 'delete-unikernel': 'images', 'delete-image': 'images',
  run: 'instances', r: 'instances', ps: 'instances', instances: 'instances', 'describe-instance': 'instances', logs: 'instances', l: 'instances', stop: 'instances', start: 'instances', rm: 'instances', 'delete-instance': 'instances', delete: 'instances',
  volumes: 'volumes', lv: 'volumes', 'create-volume': 'volumes', cv: 'volumes', 'describe-volume': 'volumes', 'delete-volume': 'volumes', rmv: 'volumes', 'attach-volume': 'volumes', av: 'volumes', attach: 'volumes', 'detach-volume': 'volumes', dv: 'volumes', detach: 'volumes',
  network: 'networks',
  export: 'export', 'config-drive': 'export',
  hub: 'hub',
  compilers: 'system', providers: 'system', 'describe-compiler': 'system', target: 'system', t: 'system',
  doctor: 'doctor',
};

/**
 * The command word of `args` (argv without node and the script), skipping root options and the
 * values of those that take one; 'version' for -v/--version before any command; undefined
 * when there is none or the line is unusual (then the whole tree answers).
 */
export function commandWord(root: Command, args: string[]): string | undefined {
  const withValue = new Set(root.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]).filter((f): f is string => !!f));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-v' || a === '--version') return 'version';
    // root help lists every command; `--` and `-` are lines commander reads its own way
    if (a === '-h' || a === '--help' || a === '--' || a === '-') return undefined;
    if (!a.startsWith('-')) return a;
    if (withValue.has(a)) i++; // `--host X`; `--host=X` is one word
  }
  return undefined;
}

/** The root command with what `argv` needs: the version, one module, or everything. */
export async function programFor(argv: string[]): Promise<Command> {
  const root = rootCommand();
  const word = commandWord(root, argv.slice(2));
  if (word === 'version') return root;
  const module = word !== undefined && Object.hasOwn(COMMAND_MODULE, word) ? COMMAND_MODULE[word] : undefined;
  const register = module === undefined ? undefined : MODULES[module];
  if (!register) return (await import('./program.js')).buildProgram();
  (await register())(root);
  return root;
}
