// unik's nftables rules: one table per home (`ip unik_<hash>`), written whole from the list of
// networks and swapped in one transaction, so the host never holds half a ruleset and a rule
// never outlives its network. Nothing else on the host is touched.

import { run } from './host.js';

export interface NatNetwork {
  bridge: string;
  subnet: string;
}

/** The whole table for these networks: outbound NAT for each, and no forwarding between two of them. */
export function renderTable(table: string, nets: NatNetwork[]): string {
  const q = (s: string) => JSON.stringify(s);
  const post = nets.map((n) => `    ip saddr ${n.subnet} oifname != ${q(n.bridge)} masquerade comment ${q(`unik ${n.bridge}: outbound NAT`)}`);
  const forward = nets.flatMap((n) => {
    const others = nets.filter((o) => o.bridge !== n.bridge).map((o) => q(o.bridge));
    return others.length ? [`    iifname ${q(n.bridge)} oifname { ${others.join(', ')} } drop comment ${q(`unik ${n.bridge}: isolated from other unik networks`)}`] : [];
  });
  return [
    `table ip ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...post,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...forward,
    '  }',
    '}',
  ].join('\n');
}

/** Replaces unik's table with the one for `nets` in one nft transaction; no networks, no table. */
export async function applyRules(table: string, nets: NatNetwork[]): Promise<void> {
  // "table … {}" first makes the delete valid whether or not the table exists
  const script = [`table ip ${table} {}`, `delete table ip ${table}`, ...(nets.length ? [renderTable(table, nets)] : [])].join('\n') + '\n';
  await run('nft', ['-f', '-'], script);
}

/** The table as the kernel has it, or '' when there is none (for tests and `network inspect`). */
export async function listTable(table: string): Promise<string> {
  try {
    return await run('nft', ['list', 'table', 'ip', table]);
  } catch {
    return '';
  }
}
