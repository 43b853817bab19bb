import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Core } from '../../core/core.js';
import { DEFAULT_NETWORK, USER_MODE } from '../../core/networks.js';
import { failedPrecondition, invalid, isUnikError, notFound } from '../../model/errors.js';
import type { InstanceRecord, NetworkRecord } from '../../model/types.js';
import { networkShape } from './serialize.js';
import { checkEndpoint, EndpointConfig } from './translate.js';
import { queryStrings } from '../unik/query.js';

type Id = { Params: { id: string } };
type Q = Record<string, string | undefined>;

const Strings = Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())]);
const Flag = Type.Optional(Type.Union([Type.Null(), Type.Boolean()]));

/** Docker's NetworkCreateRequest: every field the CLI, dockerode and compose send. */
const CreateBody = Type.Object(
  {
    Name: Type.Optional(Type.String()),
    Driver: Type.Optional(Type.Union([Type.Null(), Type.String()])),
    Scope: Type.Optional(Type.Union([Type.Null(), Type.String()])),
    CheckDuplicate: Flag,
    EnableIPv6: Flag,
    Internal: Flag,
    Attachable: Flag,
    Ingress: Flag,
    ConfigOnly: Flag,
    ConfigFrom: Type.Optional(Type.Union([Type.Null(), Type.Object({ Network: Type.Optional(Type.String()) }, { additionalProperties: true })])),
    IPAM: Type.Optional(
      Type.Union([
        Type.Null(),
        Type.Object(
          {
            Driver: Type.Optional(Type.Union([Type.Null(), Type.String()])),
            Options: Type.Optional(Strings),
            Config: Type.Optional(
              Type.Union([
                Type.Null(),
                Type.Array(
                  Type.Object(
                    {
                      Subnet: Type.Optional(Type.String()),
                      IPRange: Type.Optional(Type.String()),
                      Gateway: Type.Optional(Type.String()),
                      AuxiliaryAddresses: Type.Optional(Strings),
                    },
                    { additionalProperties: true },
                  ),
                ),
              ]),
            ),
          },
          { additionalProperties: true },
        ),
      ]),
    ),
    Options: Type.Optional(Strings),
    Labels: Type.Optional(Strings),
  },
  { additionalProperties: true },
);

const ConnectBody = Type.Object({ Container: Type.String({ minLength: 1 }), EndpointConfig: Type.Optional(EndpointConfig) }, { additionalProperties: true });
const DisconnectBody = Type.Object({ Container: Type.String({ minLength: 1 }), Force: Flag }, { additionalProperties: true });

const live = (i: InstanceRecord) => i.status.state === 'running' || i.status.state === 'pending';
/** Docker's predefined networks are bridge, host and none; of those unik has bridge. */
const builtin = (n: NetworkRecord) => n.name === DEFAULT_NETWORK;

/**
 * Docker's network routes (API 1.43), served versioned and unversioned alike: networks were not
 * in the 2016 API, so no path collides. unik's own CLI uses them too.
 */
export function networkRoutes(app: FastifyInstance, core: Core): void {
  /** A network by id, name or unique id prefix; Docker's 404 (`docker inspect X` relies on it). */
  const find = (ref: string): NetworkRecord => {
    try {
      return core.networks.get(ref);
    } catch (e) {
      if (isUnikError(e) && e.code === 'UNIK_ERR_NETWORK_NOT_FOUND') throw notFound('NETWORK_NOT_FOUND', `network ${ref} not found`);
      throw e;
    }
  };
  /** Every instance with its state brought up to date (a VM may have ended since it was stored). */
  const instances = async () => (await Promise.all(core.instances.list().map((i) => core.instances.refresh(i.id)))).filter((i): i is InstanceRecord => !!i);

  app.get<{ Querystring: Q }>('/networks', { schema: { querystring: queryStrings('filters') } }, async (req) => {
    const f = parseFilters(req.query.filters, ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type']);
    const all = await instances();
    const used = (n: NetworkRecord) => core.networks.endpoints(n).length > 0;
    let nets = core.networks.list().filter(
      (n) =>
        exact(f, 'driver', n.driver) && match(f, 'name', n.name) && match(f, 'id', n.id) && matchLabels(f, 'label', n.labels) && exact(f, 'scope', 'local'),
    );
    const dangling = f.get('dangling');
    if (dangling) {
      if (dangling.length > 1) throw invalid('BAD_FILTER', 'got more than one value for filter key "dangling"');
      const want = dangling[0] === '1' || dangling[0] === 'true' ? true : dangling[0] === '0' || dangling[0] === 'false' ? false : undefined;
      if (want === undefined) throw invalid('BAD_FILTER', `invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`);
      // in use: any instance on it, stopped ones too (they keep their address, and block rm)
      nets = nets.filter((n) => (want ? !builtin(n) && !used(n) : used(n)));
    }
    const types = f.get('type');
    if (types) {
      for (const t of types) if (t !== 'custom' && t !== 'builtin') throw invalid('BAD_FILTER', `invalid filter 'type=${t}'`);
      nets = nets.filter((n) => types.includes(builtin(n) ? 'builtin' : 'custom'));
    }
    return nets.map((n) => networkShape(n, all));
  });

  app.get<Id & { Querystring: Q }>('/networks/:id', { schema: { querystring: queryStrings('verbose', 'scope') } }, async (req) => {
    // every unik network is local: asked for another scope, Docker finds none
    if (req.query.scope && req.query.scope !== 'local') throw notFound('NETWORK_NOT_FOUND', `network ${req.params.id} not found`);
    return networkShape(find(req.params.id), await instances());
  });

  app.post<{ Body: Static<typeof CreateBody> }>('/networks/create', { schema: { body: CreateBody } }, async (req, reply) => {
    const b = req.body;
    if (!b.Name) throw invalid('BAD_NAME', 'a network needs a name (Name)');
    const driver = b.Driver || 'bridge';
    if (driver !== 'bridge') throw invalid('UNSUPPORTED_DRIVER', `network driver ${JSON.stringify(driver)} is not supported: unik makes bridge networks only`, 'leave --driver out, or use --driver bridge');
    if (b.Scope && b.Scope !== 'local') throw invalid('UNSUPPORTED_SCOPE', `network scope ${JSON.stringify(b.Scope)} is not supported: unik networks are local to this host`);
    if (b.EnableIPv6) throw invalid('NO_IPV6', 'IPv6 networks are not supported: unik networks are IPv4 only', 'leave --ipv6 out');
    if (b.Internal) throw invalid('NO_INTERNAL', 'internal networks are not supported yet', 'leave --internal out');
    if (b.Ingress) throw invalid('NO_INGRESS', 'ingress networks are a swarm feature; unik has no swarm');
    if (b.ConfigOnly || b.ConfigFrom?.Network) throw invalid('NO_CONFIG_ONLY', 'config-only networks (--config-only, --config-from) are not supported');
    const opts = Object.keys(b.Options ?? {});
    if (opts.length) throw invalid('UNSUPPORTED_OPTION', `network driver options are not supported: ${opts.join(', ')}`, 'leave -o/--opt out');
    const ipam = b.IPAM ?? {};
    if (ipam.Driver && ipam.Driver !== 'default') throw invalid('UNSUPPORTED_IPAM', `IPAM driver ${JSON.stringify(ipam.Driver)} is not supported: unik assigns addresses itself`, 'leave --ipam-driver out');
    if (Object.keys(ipam.Options ?? {}).length) throw invalid('UNSUPPORTED_IPAM', 'IPAM options (--ipam-opt) are not supported');
    const configs = ipam.Config ?? [];
    if (configs.length > 1) throw invalid('ONE_SUBNET', `a unik network has one IPv4 subnet; ${configs.length} were given`, 'give one --subnet');
    const c = configs[0] ?? {};
    if ([c.Subnet, c.Gateway].some((a) => a?.includes(':'))) throw invalid('NO_IPV6', 'IPv6 subnets are not supported: unik networks are IPv4 only');
    if (c.IPRange) throw invalid('NO_IP_RANGE', '--ip-range is not supported yet: addresses come from the whole subnet', 'leave --ip-range out');
    if (Object.keys(c.AuxiliaryAddresses ?? {}).length) throw invalid('NO_AUX_ADDRESS', '--aux-address is not supported yet');
    if (c.Gateway && !c.Subnet) throw invalid('BAD_GATEWAY', 'a gateway needs its subnet', 'give --subnet too');
    const net = await core.networks.create({ name: b.Name, ...(c.Subnet ? { subnet: c.Subnet } : {}), ...(c.Gateway ? { gateway: c.Gateway } : {}), labels: b.Labels ?? {} });
    return reply.code(201).send({ Id: net.id, Warning: '' });
  });

  app.delete<Id>('/networks/:id', async (req, reply) => {
    const net = find(req.params.id);
    try {
      await core.networks.remove(net.id);
    } catch (e) {
      if (isUnikError(e) && e.code === 'UNIK_ERR_NETWORK_IN_USE') return inUse(reply, net, core.networks.endpoints(net));
      throw e;
    }
    return reply.code(204).send();
  });

  // A VM has one network interface, fixed while it runs: connect moves a stopped instance here
  // (from user mode or another network), disconnect moves it back to user mode.
  app.post<Id & { Body: Static<typeof ConnectBody> }>('/networks/:id/connect', { schema: { body: ConnectBody } }, async (req, reply) => {
    const net = find(req.params.id);
    const inst = core.instances.get(req.body.Container);
    checkEndpoint(net.name, req.body.EndpointConfig ?? undefined);
    await core.instances.refresh(inst.id);
    await moveTo(core, req.body.Container, inst, net.id, `connect it to ${net.name}`);
    return reply.code(200).send();
  });

  app.post<Id & { Body: Static<typeof DisconnectBody> }>('/networks/:id/disconnect', { schema: { body: DisconnectBody } }, async (req, reply) => {
    const net = find(req.params.id);
    const inst = (await core.instances.refresh(core.instances.get(req.body.Container).id)) ?? core.instances.get(req.body.Container);
    if (inst.spec.network?.networkId !== net.id) throw invalid('NOT_CONNECTED', `container ${req.body.Container} is not connected to network ${net.name}`);
    await moveTo(core, req.body.Container, inst, USER_MODE, `disconnect it from ${net.name}`);
    return reply.code(200).send();
  });

  app.post<{ Querystring: Q }>('/networks/prune', { schema: { querystring: queryStrings('filters') } }, async (req) => {
    const f = parseFilters(req.query.filters, ['until', 'label', 'label!']);
    const until = f.get('until');
    if (until && until.length > 1) throw invalid('BAD_FILTER', 'more than one until filter specified');
    const before = until ? timestamp(until[0]!) : undefined;
    const deleted: string[] = [];
    for (const n of core.networks.list()) {
      if (builtin(n) || core.networks.endpoints(n).length) continue;
      if (!matchLabels(f, 'label', n.labels)) continue;
      if (f.has('label!') && matchLabels(f, 'label!', n.labels)) continue;
      if (before !== undefined && Date.parse(n.created) >= before) continue;
      try {
        await core.networks.remove(n.id);
        deleted.push(n.name);
      } catch (e) {
        // taken meanwhile: in use after all
        if (!(isUnikError(e) && (e.code === 'UNIK_ERR_NETWORK_IN_USE' || e.code === 'UNIK_ERR_NETWORK_NOT_FOUND'))) throw e;
      }
    }
    return { NetworksDeleted: deleted };
  });
}

/** setNetwork, with Docker's words for a running container. */
async function moveTo(core: Core, ref: string, inst: InstanceRecord, network: string, what: string): Promise<void> {
  try {
    await core.instances.setNetwork(inst.id, network);
  } catch (e) {
    if (isUnikError(e) && e.code === 'UNIK_ERR_INSTANCE_RUNNING')
      throw failedPrecondition(
        'INSTANCE_RUNNING',
        `container ${ref} is running: a unikernel's network interface is fixed while it runs`,
        `stop it first (docker stop ${ref}), ${what}, then start it`,
      );
    throw e;
  }
}

/** Docker answers 403 for a network that still has endpoints. */
function inUse(reply: FastifyReply, net: NetworkRecord, users: InstanceRecord[]) {
  const names = users.map((i) => `${i.name}${live(i) ? '' : ` (${i.status.state})`}`).join(', ');
  return reply.code(403).send({
    message: `error while removing network: network ${net.name} id ${net.id} has active endpoints: ${names} (remove them (docker rm), or move them off while stopped (docker network disconnect ${net.name} NAME))`,
  });
}

/**
 * Docker's `filters` query: JSON, {"key": ["v", …]} or the older {"key": {"v": true}}.
 * A key the route does not know is a 400, as in Docker ("invalid filter 'key'").
 */
export function parseFilters(raw: string | undefined, accepted: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalid('BAD_FILTER', `invalid filters: ${raw} is not JSON`);
  }
  if (parsed === null) return out;
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid('BAD_FILTER', `invalid filters: ${raw}: want {"key": ["value"]}`);
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    const values = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.keys(v) : undefined;
    if (!values || values.some((x) => typeof x !== 'string')) throw invalid('BAD_FILTER', `invalid filters: the values of ${k} must be strings`);
    if (!accepted.includes(k)) throw invalid('BAD_FILTER', `invalid filter '${k}'`);
    if (values.length) out.set(k, values as string[]);
  }
  return out;
}

/** Docker's filters.ExactMatch: no values, or one of them equal. */
function exact(f: Map<string, string[]>, key: string, source: string): boolean {
  const values = f.get(key);
  return !values || values.includes(source);
}

/**
 * Docker's filters.Match: equal, or the value found in the source. Docker reads the value as a
 * regular expression under Go's linear-time engine; JavaScript's backtracking one would let one
 * request hang the daemon, so a plain substring stands in (what `--filter name=web` means anyway).
 */
function match(f: Map<string, string[]>, key: string, source: string): boolean {
  const values = f.get(key);
  if (!values || values.includes(source)) return true;
  return values.some((v) => source.includes(v));
}

/** Docker's filters.MatchKVList: every `key` or `key=value` holds. */
function matchLabels(f: Map<string, string[]>, key: string, labels: Record<string, string>): boolean {
  const values = f.get(key);
  if (!values) return true;
  return values.every((v) => {
    const eq = v.indexOf('=');
    const k = eq < 0 ? v : v.slice(0, eq);
    return Object.hasOwn(labels, k) && (eq < 0 || labels[k] === v.slice(eq + 1));
  });
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Docker's until: unix seconds, a Go duration before now (10m, 24h), or an RFC 3339 time. */
function timestamp(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * DURATION_UNITS[unit!]!;
    return Date.now() - ms;
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalid('BAD_FILTER', `invalid until filter ${JSON.stringify(v)}: want a unix time, a duration (24h) or an RFC 3339 time`);
  return t;
}
