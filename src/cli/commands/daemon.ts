// `unik daemon`: loads the server only when asked, so every other command starts fast.
import type { Command } from 'commander';
import { parsePositiveInt } from '../parse.js';

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the unik daemon (REST API) in the foreground')
    .option('--port <PORT>', 'port to listen on', '3000')
    .option('--host <HOST>', 'address to bind', '127.0.0.1')
    .action(async (flags: { port: string; host: string }) => {
      const port = parsePositiveInt(flags.port, '--port');
      const { runDaemon } = await import('../../daemon/main.js');
      await runDaemon({ port, host: flags.host });
    });
}
