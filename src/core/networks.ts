import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Store } from '../store/db.js';
import { alreadyExists, conflict, failedPrecondition, invalid, isUnikError, unavailable } from '../model/errors.js';
import type { InstanceRecord, NetworkAttachment, NetworkRecord } from '../model/types.js';
import type { BridgedNic } from '../providers/types.js';
import { checkName, newId, resolveRef } from './ids.js';
import { bridgedUnavailable, deleteBridge, enableForwarding, ensureBridge, hostSubnets, ownedBridges, requireBridged } from '../network/host.js';
import { applyRules } from '../network/nft.js';
import { checkUsable, contains, formatIp, formatSubnet, isHostAddress, macFor, nextFree, overlaps, parseIp, parseSubnet, pickSubnet, type Subnet } from '../network/subnet.js';
import { parseResolvConf, startDnsServer, type DnsServer } from '../network/dns.js';

/** The network a run joins when it names none (Docker's name for its own default). */
export const DEFAULT_NETWORK = 'bridge';
/** QEMU's user-mode network: no bridge, no address reachable from the host, no root needed. */
export const USER_MODE = 'user';
/** names a user network cannot take: they mean something already */
const RESERVED = new Set([USER_MODE, 'host', 'none', 'default']);

export interface CreateNetworkRequest {
  name: string;
  subnet?: string;
  gateway?: string;
  labels?: Record<string, string>;
}

/**
 * Bridged networks: the record first, then the host's bridge, NAT rules and DNS, all of them
 * redone at every daemon start from the records (so a crash or a host reboot between the two
 * leaves nothing half made). Changes are serialised: each rewrites unik's whole nftables table.
 */
export class NetworkService {
  private readonly dns = new Map<string, DnsServer>();
  private queue: Promise<unknown> = Promise.resolve();
  /** this home's own nftables tables: two homes on one host keep their rules apart */
  readonly table: string;
  /** the alias of this home's bridges: what a crash left can be told from another home's */
  private readonly owner: string;
  /** networks being removed: no new instance may take an address on them */
  private readonly removing = new Set<string>();
  /** per network, its running instances' names (and short ids) → addresses; rebuilt after any instance change */
  private names?: Map<string, Map<string, string>>;

  constructor(
    private readonly store: Store,
    home: string,
    private readonly log: (msg: string) => void = () => {},
  ) {
    const tag = createHash('sha256').update(home).digest('hex').slice(0, 8);
    this.table = `unik_${tag}`;
    this.owner = `unik-home-${tag}`;
  }

  list(): NetworkRecord[] {
    return this.store.listNetworks();
  }

  get(ref: string): NetworkRecord {
    return resolveRef('network', ref, this.list());
  }

  /** The instances on a network (any state). */
  endpoints(net: NetworkRecord): InstanceRecord[] {
    return this.store.listInstances().filter((i) => i.spec.network?.networkId === net.id);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  create(req: CreateNetworkRequest): Promise<NetworkRecord> {
    return this.serial(() => this.createNow(req));
  }

  private async createNow(req: CreateNetworkRequest): Promise<NetworkRecord> {
    checkName('network', req.name);
    if (RESERVED.has(req.name)) throw invalid('RESERVED_NETWORK', `${req.name} is a reserved network name`, req.name === USER_MODE ? 'user-mode networking needs no network: run with --network user' : 'pick another name');
    if (this.list().some((n) => n.name === req.name)) throw alreadyExists('NETWORK_EXISTS', `a network named ${req.name} already exists`, 'pick another name, or remove the old one (unik network rm)');
    for (const [k, v] of Object.entries(req.labels ?? {})) if (k.length > 256 || v.length > 4096) throw invalid('BAD_LABEL', 'a network label is too long');
    // what was asked is checked first, whatever the host: a bad subnet is the user's to fix
    const asked = req.subnet ? parseSubnet(req.subnet) : undefined;
    if (asked) checkUsable(asked);
    let askedGateway: number | undefined;
    if (req.gateway) {
      const g = parseIp(req.gateway);
      if (!asked) throw invalid('BAD_GATEWAY', 'a gateway needs its subnet', 'give --subnet too, or leave --gateway out');
      if (g === undefined || !isHostAddress(asked, g, -1)) throw invalid('BAD_GATEWAY', `gateway ${req.gateway} is not a host address of ${req.subnet}`, 'leave --gateway out: the first address is used');
      askedGateway = g;
    }
    requireBridged();

    const ours = this.list();
    const host = await hostSubnets(new Set(ours.map((n) => n.bridge)));
    let subnet: Subnet;
    if (asked) {
      subnet = asked;
      const mine = ours.find((n) => overlaps(parseSubnet(n.subnet), subnet));
      if (mine) throw conflict('SUBNET_CLASH', `subnet ${req.subnet} overlaps network ${mine.name} (${mine.subnet})`, 'pick a subnet no other network uses, or leave --subnet out to get a free one');
      const route = host.find((h) => overlaps(h.subnet, subnet));
      if (route) throw conflict('SUBNET_CLASH', `subnet ${req.subnet} overlaps ${formatSubnet(route.subnet)}, which this host already routes${route.dev ? ` through ${route.dev}` : ''}`, 'pick a subnet the host does not use (see `ip route`), or leave --subnet out to get a free one');
    } else {
      const picked = pickSubnet([...ours.map((n) => parseSubnet(n.subnet)), ...host.map((h) => h.subnet)]);
      if (!picked) throw unavailable('NO_FREE_SUBNET', 'no free /24 is left in 10.89.0.0/16', 'give one with --subnet');
      subnet = picked;
    }
    const gateway = askedGateway ?? subnet.base + 1;
    const id = newId();
    const net: NetworkRecord = {
      id,
      name: req.name,
      driver: 'bridge',
      subnet: formatSubnet(subnet),
      gateway: formatIp(gateway),
      // per home and network: two homes on one host never share a bridge
      bridge: `unikbr${id.slice(0, 8)}`,
      created: new Date().toISOString(),
      labels: req.labels ?? {},
    };
    // the record first: a daemon that dies before the bridge is made makes it at its next start
    this.store.insertNetwork(net);
    try {
      await this.bringUp(net);
      await this.applyRules();
    } catch (e) {
      // the effects undone before the record: a crash between leaves a record, made whole at the next start
      await this.takeDown(net).catch(() => undefined);
      this.store.deleteNetwork(net.id);
      await this.applyRules().catch(() => undefined);
      throw isUnikError(e) ? e : unavailable('NETWORK_SETUP_FAILED', `cannot set up network ${net.name}: ${(e as Error).message}`);
    }
    return net;
  }

  remove(ref: string): Promise<NetworkRecord> {
    return this.serial(async () => {
      const net = this.get(ref);
      const users = this.endpoints(net);
      if (users.length)
        throw failedPrecondition('NETWORK_IN_USE', `network ${net.name} is in use by ${users.map((i) => i.name).join(', ')}`, 'remove those instances first (unik rm), or move them to another network while stopped (docker network disconnect)');
      // from here no run takes an address on it (checked and marked in one step)
      this.removing.add(net.id);
      try {
        // the effects first, the record last: a crash between leaves a record that the next start makes whole again
        await this.takeDown(net);
        await this.applyRules(net.id);
        this.store.deleteNetwork(net.id);
      } finally {
        this.removing.delete(net.id);
      }
      return net;
    });
  }

  /** The default bridged network, made on first use. */
  async ensureDefault(): Promise<NetworkRecord> {
    const found = this.list().find((n) => n.name === DEFAULT_NETWORK);
    if (found) return found;
    return this.serial(async () => this.list().find((n) => n.name === DEFAULT_NETWORK) ?? this.createNow({ name: DEFAULT_NETWORK }));
  }

  /**
   * The network a run joins: the one it names, `user` for QEMU's user-mode network, and when it
   * names none, UNIK_DEFAULT_NETWORK if set, else the default bridged network where this host
   * can make bridges, else user mode.
   */
  async forRun(requested: string | undefined): Promise<NetworkRecord | typeof USER_MODE> {
    // Docker's "default" means whatever the daemon's default is
    const asked = requested === 'default' ? undefined : requested;
    if (asked === 'host' || asked === 'none')
      throw invalid('UNSUPPORTED_NETWORK', `network mode ${asked} is not possible for a unikernel: it is a VM with its own network interface`, 'use a bridged network (the default), or --network user');
    const name = asked || process.env.UNIK_DEFAULT_NETWORK || (bridgedUnavailable() ? USER_MODE : DEFAULT_NETWORK);
    if (name === USER_MODE) return USER_MODE;
    if (name === DEFAULT_NETWORK) return this.ensureDefault();
    return this.get(name);
  }

  /**
   * A free address on `net` for instance `instanceId`. Synchronous, so that called inside the
   * transaction that stores the instance, no other run can take the same address meanwhile.
   */
  allocate(net: NetworkRecord, instanceId: string): NetworkAttachment {
    if (this.removing.has(net.id) || !this.list().some((n) => n.id === net.id))
      throw failedPrecondition('NETWORK_GONE', `network ${net.name} is being removed`, 'pick another network');
    const subnet = parseSubnet(net.subnet);
    const used = new Set(this.endpoints(net).map((i) => parseIp(i.spec.network!.ip)!));
    const ip = nextFree(subnet, parseIp(net.gateway)!, used);
    if (ip === undefined) throw failedPrecondition('NETWORK_FULL', `network ${net.name} (${net.subnet}) has no free address left`, 'remove unused instances, or make a larger network (unik network create --subnet)');
    return { networkId: net.id, ip: formatIp(ip), mac: macFor(instanceId) };
  }

  /** What the provider needs to put an instance on its network, or undefined for user mode. */
  nicFor(inst: InstanceRecord): BridgedNic | undefined {
    const a = inst.spec.network;
    if (!a) return undefined;
    const net = this.list().find((n) => n.id === a.networkId);
    if (!net) throw failedPrecondition('NETWORK_GONE', `the network of instance ${inst.name} no longer exists`, 'connect it to another network (docker network connect), or remove it');
    requireBridged();
    const prefix = parseSubnet(net.subnet).prefix;
    // tap names hold 15 bytes; the instance id keeps them apart
    return { bridge: net.bridge, tap: tapName(inst.id), ip: `${a.ip}/${prefix}`, gateway: net.gateway, dns: net.gateway, mac: a.mac };
  }

  /** At daemon start: every recorded network's bridge, rules and DNS, as the records say. */
  async restore(): Promise<void> {
    const nets = this.list();
    const why = bridgedUnavailable();
    if (why) {
      if (nets.length) this.log(`warning: ${nets.length} bridged network(s) cannot be set up: ${why}`);
      return;
    }
    await this.sweepBridges().catch((e: Error) => this.log(`warning: sweeping bridges: ${e.message}`));
    if (!nets.length) return;
    for (const n of nets) await this.bringUp(n).catch((e: Error) => this.log(`warning: network ${n.name}: ${e.message}`));
    await this.applyRules().catch((e: Error) => this.log(`warning: nftables rules: ${e.message}`));
  }

  /** Bridges of this home with no record (a crash while a network was made or removed): removed. */
  private async sweepBridges(): Promise<void> {
    const known = new Set(this.list().map((n) => n.bridge));
    for (const b of await ownedBridges(this.owner)) if (!known.has(b)) await deleteBridge(b).then(() => this.log(`removed bridge ${b}, left by an unfinished network`), () => undefined);
  }

  /**
   * Rewrites unik's rules for the networks and the instances on them (each VM's tap may send
   * only from its own address and MAC). Called whenever an instance gets, changes or loses its
   * address; `without` leaves out a network being removed.
   */
  syncRules(): Promise<void> {
    this.names = undefined;
    return this.serial(() => this.applyRules());
  }

  private applyRules(without?: string): Promise<void> {
    const nets = this.list().filter((n) => n.id !== without);
    const prefix = new Map(nets.map((n) => [n.id, n]));
    const eps = this.store
      .listInstances()
      .filter((i) => i.spec.network && prefix.has(i.spec.network.networkId))
      .map((i) => ({ tap: tapName(i.id), ip: i.spec.network!.ip, mac: i.spec.network!.mac }));
    return applyRules(this.table, nets, eps);
  }

  /** Instance names changed (run, stop, rm…): the DNS answers are rebuilt at the next query. */
  invalidateNames(): void {
    this.names = undefined;
  }

  private async bringUp(net: NetworkRecord): Promise<void> {
    enableForwarding();
    const subnet = parseSubnet(net.subnet);
    await ensureBridge(net.bridge, net.gateway, subnet.prefix, this.owner);
    if (this.dns.has(net.id)) return;
    try {
      const upstreams = readUpstreams().filter((u) => u !== net.gateway);
      // only its own network may ask: names do not leak to other networks or the LAN
      const allowFrom = (a: string) => parseIp(a) !== undefined && contains(subnet, parseIp(a)!);
      this.dns.set(net.id, await startDnsServer({ host: net.gateway, port: Number(process.env.UNIK_DNS_PORT) || 53, upstreams, allowFrom, zone: { lookup: (name) => this.lookup(net, name) }, log: this.log }));
    } catch (e) {
      // the network still works by address; names do not
      this.log(`warning: network ${net.name}: no DNS on ${net.gateway}: ${(e as Error).message}`);
    }
  }

  private async takeDown(net: NetworkRecord): Promise<void> {
    await this.dns.get(net.id)?.close();
    this.dns.delete(net.id);
    await deleteBridge(net.bridge);
  }

  /**
   * Names on a network: its live instances by name and by 12-character id. Served from a map
   * rebuilt only after an instance changes, never by reading the store per query: a guest that
   * floods its DNS server must not load the daemon.
   */
  private lookup(net: NetworkRecord, name: string): string | undefined {
    if (!this.names) {
      const names = new Map<string, Map<string, string>>();
      for (const i of this.store.listInstances()) {
        const a = i.spec.network;
        if (!a || (i.status.state !== 'running' && i.status.state !== 'pending')) continue;
        let m = names.get(a.networkId);
        if (!m) names.set(a.networkId, (m = new Map()));
        m.set(i.id.slice(0, 12), a.ip);
        m.set(i.name.toLowerCase(), a.ip);
      }
      this.names = names;
    }
    return this.names.get(net.id)?.get(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.dns.values()].map((d) => d.close()));
    this.dns.clear();
  }
}

function readUpstreams(): string[] {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return [];
  }
}

/** A VM's tap device: 15 bytes at most; the instance id keeps them apart. */
function tapName(instanceId: string): string {
  return `ukt${instanceId.slice(0, 12)}`;
}
