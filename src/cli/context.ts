// What every client command needs: the resolved target and a client for it.
import type { Command } from 'commander';
import { UnikClient } from '../client/client.js';
import { hostOf, resolveTarget, targetUrl, type Target } from './target.js';
import { clientTls, withDeferredCa, type TlsFlags } from './tls.js';

export interface Ctx {
  client: UnikClient;
  target: Target;
  /** The daemon's host name, to print reachable URLs of published ports. */
  daemonHost: string;
}

/** Global options live on the root command; a subcommand's own --host wins over them. */
export function contextFor(cmd: Command): Ctx {
  let root = cmd;
  while (root.parent) root = root.parent;
  const rootOpts = root.opts<{ host?: string; clientConfig?: string } & TlsFlags>();
  const flag = cmd.opts<{ host?: string }>().host ?? rootOpts.host;
  const target = resolveTarget({ flag, configPath: rootOpts.clientConfig });
  const tls = clientTls(rootOpts);
  let url = targetUrl(target.address);
  if (tls) url = url.replace(/^http:\/\//i, 'https://');
  // Same variable the daemon reads its token from.
  const client = new UnikClient(url, { token: process.env.UNIK_API_TOKEN, tls: withDeferredCa(url, tls) ?? tls });
  return { client, target, daemonHost: hostOf(target.address) };
}
