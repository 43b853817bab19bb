// The root `unik` command: its description and global options, without any subcommand.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

/** Compiled to dist/src/cli/, three levels below the package root. */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function rootCommand(): Command {
  return new Command('unik')
    .description('compile applications into unikernels and run them under QEMU, through the unik daemon')
    .version(packageVersion(), '-v, --version', 'print the version')
    .option('--host <HOST:PORT>', 'daemon to talk to (default: $UNIK_HOST, then "unik target", then 127.0.0.1:3000)')
    .option('--client-config <PATH>', 'client config file (default: $UNIK_HOME/client-config.yaml)')
    .option('--tls', 'talk HTTPS to the daemon (also $UNIK_TLS=1)')
    .option('--tlsverify', 'HTTPS with a client certificate, for a daemon started with --tls-verify (also $UNIK_TLS_VERIFY=1)')
    .option('--tlscacert <PEM>', "the CA that signed the daemon's certificate (default: $UNIK_CERT_PATH/ca.pem)")
    .option('--tlscert <PEM>', 'client certificate (default: $UNIK_CERT_PATH/cert.pem)')
    .option('--tlskey <PEM>', 'client key (default: $UNIK_CERT_PATH/key.pem)')
    // Root options only before the command name, so `target --host` and `daemon --host` keep theirs.
    .enablePositionalOptions()
    .showHelpAfterError('(run "unik help" for the list of commands)');
}
