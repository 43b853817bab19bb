// Network commands: network create, ls, inspect, rm, connect, disconnect.
import type { Command } from 'commander';
import type { NetworkJson } from '../../api/types.js';
import { contextFor } from '../context.js';
import { CliError } from '../errors.js';
import { NETWORK_HEAD, networkRow, printJson, printTable } from '../output.js';
import { collect } from '../parse.js';
import { clientCommand, forEachItem } from './common.js';

/** `--label k=v` flags as a map; a flag without "=" is refused before anything is sent. */
export function parseLabels(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at < 1) throw new CliError(`invalid --label "${v}": expected KEY=VALUE`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('bridged networks: each instance gets its own address, and finds the others by name');

  clientCommand(network, 'create', 'create a bridged network')
    .argument('<NAME>', 'network name')
    .option('--subnet <CIDR>', 'IPv4 subnet, e.g. 10.89.5.0/24 (default: a free /24 in 10.89.0.0/16)')
    .option('--gateway <IP>', "the host's address on the network (default: the subnet's first)")
    .option('--label <KEY=VALUE>', 'a label (repeatable)', collect)
    .option('--json', 'print the network as JSON')
    .action(async (name: string, flags: { subnet?: string; gateway?: string; label?: string[]; json?: boolean }, cmd: Command) => {
      const labels = parseLabels(flags.label ?? []);
      const net = await contextFor(cmd).client.networks.create({ name, ...(flags.subnet ? { subnet: flags.subnet } : {}), ...(flags.gateway ? { gateway: flags.gateway } : {}), labels });
      if (flags.json) printJson(net);
      else printTable(NETWORK_HEAD, [networkRow(net)]);
    });

  clientCommand(network, 'ls', 'list networks')
    .alias('list')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const list: NetworkJson[] = await contextFor(cmd).client.networks.all();
      if (flags.json) printJson(list);
      else printTable(NETWORK_HEAD, list.map((n) => networkRow(n)));
    });

  clientCommand(network, 'inspect', 'print networks as JSON, with the instances on them')
    .argument('<NETWORK...>', 'network names or ids')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const { client } = contextFor(cmd);
      printJson(await Promise.all(refs.map((r) => client.networks.get(r))));
    });

  clientCommand(network, 'rm', 'delete networks (no instance may be on them)')
    .alias('remove')
    .argument('<NETWORK...>', 'network names or ids')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const { client } = contextFor(cmd);
      await forEachItem(refs, (r) => client.networks.delete(r));
    });

  clientCommand(network, 'connect', 'move a stopped instance onto a network (it gets an address there)')
    .argument('<NETWORK>', 'network name or id')
    .argument('<INSTANCE>', 'instance name or id')
    .action(async (net: string, inst: string, _flags: unknown, cmd: Command) => {
      await contextFor(cmd).client.networks.connect(net, inst);
    });

  clientCommand(network, 'disconnect', 'move a stopped instance off a network, to user-mode networking')
    .argument('<NETWORK>', 'network name or id')
    .argument('<INSTANCE>', 'instance name or id')
    .action(async (net: string, inst: string, _flags: unknown, cmd: Command) => {
      await contextFor(cmd).client.networks.disconnect(net, inst);
    });
}
