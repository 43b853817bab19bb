// `unik daemon`: loads the server only when asked, so every other command starts fast.
import type { Command } from 'commander';
import { parsePositiveInt } from '../parse.js';

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the unik daemon (REST API) in the foreground')
    .option('--port <PORT>', 'port to listen on', '3000')
    .option('--host <HOST>', 'address to bind; beyond loopback it needs TLS and UNIK_API_TOKEN or --tls-verify', '127.0.0.1')
    .option('--tls-cert <PEM>', 'serve HTTPS with this certificate')
    .option('--tls-key <PEM>', "the certificate's private key")
    .option('--tls-verify', 'require client certificates signed by --tls-ca (as Docker\'s --tlsverify)')
    .option('--tls-ca <PEM>', 'the CA that signs client certificates')
    .option('--allowed-host <NAME>', 'a host name clients may call the daemon by, beside IP addresses and localhost (repeatable; also UNIK_ALLOWED_HOSTS)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--libvirt-uri <URI>', "the libvirt provider's connection (default: LIBVIRT_DEFAULT_URI, else qemu:///system; e.g. qemu+ssh://root@host/system)")
    .action(async (flags: { port: string; host: string; tlsCert?: string; tlsKey?: string; tlsVerify?: boolean; tlsCa?: string; allowedHost: string[]; libvirtUri?: string }) => {
      const port = parsePositiveInt(flags.port, '--port');
      if (flags.tlsVerify && !flags.tlsCa) {
        process.stderr.write('unik: --tls-verify needs --tls-ca CA.pem, the CA that signs client certificates\n');
        process.exit(2);
      }
      const { runDaemon } = await import('../../daemon/main.js');
      await runDaemon({
        port,
        host: flags.host,
        ...(flags.tlsCert ? { tlsCert: flags.tlsCert } : {}),
        ...(flags.tlsKey ? { tlsKey: flags.tlsKey } : {}),
        ...(flags.tlsVerify && flags.tlsCa ? { tlsCa: flags.tlsCa } : {}),
        allowedHosts: flags.allowedHost,
        ...(flags.libvirtUri ? { libvirtUri: flags.libvirtUri } : {}),
      });
    });
}
