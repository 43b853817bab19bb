// unik's nftables rules: two tables per home (`ip unik_<hash>`, `bridge unik_<hash>`), written whole from the list of
// networks and swapped in one transaction, so the host never holds half a ruleset and a rule
// never outlives its network. Nothing else on the host is touched.

import { run } from './host.js';

export interface NatNetwork {
  bridge: string;
  subnet: string;
  gateway: string;
}

/** A VM's tap on a bridge, with the only addresses it may send from. */
export interface Endpoint {
  tap: string;
  ip: string;
  mac: string;
}

// Names reach the script only from ids and parsed numbers; checked again here, since nft reads
// its own quoting, not JSON's.
const IFNAME = /^[a-z0-9]{1,15}$/;
const CIDR = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function checked(nets: NatNetwork[], eps: Endpoint[]): void {
  for (const n of nets) if (!IFNAME.test(n.bridge) || !CIDR.test(n.subnet) || !IPV4.test(n.gateway)) throw new Error(`refusing an nftables rule for ${JSON.stringify(n)}`);
  for (const e of eps) if (!IFNAME.test(e.tap) || !IPV4.test(e.ip) || !MAC.test(e.mac)) throw new Error(`refusing an nftables rule for ${JSON.stringify(e)}`);
}

/**
 * unik's two tables for these networks and the VMs on them:
 * - ip: outbound NAT per network; a guest reaches the host only at its own gateway, and a
 *   gateway answers only its own network (and the host); nothing is forwarded into a network
 *   but answers (only the host itself, and published ports, reach guests); a guest sends only
 *   from its subnet, and not to link-local addresses (cloud metadata);
 * - bridge: each VM's tap sends only from its own MAC and address (no ARP or IP spoofing of a
 *   neighbour or of the gateway), and no IPv6 (no router advertisements to the host).
 */
export function renderTables(table: string, nets: NatNetwork[], eps: Endpoint[]): string {
  checked(nets, eps);
  const ifs = (xs: string[]) => `{ ${xs.map((x) => `"${x}"`).join(', ')} }`;
  const post = nets.map((n) => `    ip saddr ${n.subnet} oifname != "${n.bridge}" masquerade`);
  const input = nets.flatMap((n) => [`    iifname "${n.bridge}" ip daddr != ${n.gateway} drop`, `    ip daddr ${n.gateway} iifname != ${ifs(['lo', n.bridge])} drop`]);
  const forward = nets.flatMap((n) => [
    // where br_netfilter is loaded, traffic between two VMs of one bridge passes here too
    `    iifname "${n.bridge}" oifname "${n.bridge}" accept`,
    `    iifname "${n.bridge}" ip saddr != ${n.subnet} drop`,
    `    iifname "${n.bridge}" ip daddr 169.254.0.0/16 drop`,
    `    oifname "${n.bridge}" ct state established,related accept`,
    `    oifname "${n.bridge}" drop`,
  ]);
  const guard = eps.flatMap((e) => [
    `    iifname "${e.tap}" ether saddr != ${e.mac} drop`,
    `    iifname "${e.tap}" arp saddr ether != ${e.mac} drop`,
    `    iifname "${e.tap}" arp saddr ip != ${e.ip} drop`,
    `    iifname "${e.tap}" ip saddr != ${e.ip} drop`,
    `    iifname "${e.tap}" ether type ip6 drop`,
  ]);
  return [
    `table ip ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...post,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    ...input,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...forward,
    '  }',
    '}',
    `table bridge ${table} {`,
    '  chain guard {',
    ...guard,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    jump guard',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    jump guard',
    '  }',
    '}',
  ].join('\n');
}

/** Replaces unik's tables with the ones for `nets` in one nft transaction; no networks, no tables. */
export async function applyRules(table: string, nets: NatNetwork[], eps: Endpoint[]): Promise<void> {
  // "table … {}" first makes the delete valid whether or not the table exists
  const reset = ['ip', 'bridge'].flatMap((f) => [`table ${f} ${table} {}`, `delete table ${f} ${table}`]);
  const script = [...reset, ...(nets.length ? [renderTables(table, nets, eps)] : [])].join('\n') + '\n';
  await run('nft', ['-f', '-'], script);
}
