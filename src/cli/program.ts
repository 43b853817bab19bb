// The `unik` command tree. Seed (2016 talk) names first, later 2016 names as aliases.
import type { Command } from 'commander';
import { registerDaemonCommand } from './commands/daemon.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerHubCommands } from './commands/hub.js';
import { registerImageCommands } from './commands/images.js';
import { registerInstanceCommands } from './commands/instances.js';
import { registerNetworkCommands } from './commands/networks.js';
import { registerExportCommands } from './commands/export.js';
import { registerSystemCommands } from './commands/system.js';
import { registerVolumeCommands } from './commands/volumes.js';
import { rootCommand } from './root.js';

/** Every command (help, an unknown command, the tests); main.ts loads one module when it can (see lazy.ts). */
export function buildProgram(): Command {
  const program = rootCommand();
  registerDaemonCommand(program);
  registerImageCommands(program);
  registerInstanceCommands(program);
  registerVolumeCommands(program);
  registerNetworkCommands(program);
  registerExportCommands(program);
  registerHubCommands(program);
  registerSystemCommands(program);
  registerDoctorCommand(program);
  return program;
}
