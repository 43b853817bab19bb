import { Type, type Static } from '@sinclair/typebox';
import { invalid } from '../../model/errors.js';
import type { RunRequest } from '../../core/instances.js';

/** One network's endpoint settings (create's NetworkingConfig.EndpointsConfig, and connect's EndpointConfig). */
export const EndpointConfig = Type.Union([
  Type.Null(),
  Type.Object(
    {
      IPAMConfig: Type.Optional(
        Type.Union([
          Type.Null(),
          Type.Object(
            {
              IPv4Address: Type.Optional(Type.String()),
              IPv6Address: Type.Optional(Type.String()),
              LinkLocalIPs: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String())])),
            },
            { additionalProperties: true },
          ),
        ]),
      ),
      MacAddress: Type.Optional(Type.String()),
    },
    { additionalProperties: true },
  ),
]);
export type EndpointConfig = Static<typeof EndpointConfig>;

/** The parts of Docker's container create body unik reads (the CLI sends many more). */
export const CreateBody = Type.Object(
  {
    Image: Type.String({ minLength: 1 }),
    Cmd: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String()), Type.String()])),
    Entrypoint: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String()), Type.String()])),
    Env: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String())])),
    Labels: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), Type.String())])),
    Tty: Type.Optional(Type.Boolean()),
    HostConfig: Type.Optional(
      Type.Object(
        {
          PortBindings: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), Type.Union([Type.Null(), Type.Array(Type.Object({ HostIp: Type.Optional(Type.String()), HostPort: Type.Optional(Type.String()) }))]))])),
          Memory: Type.Optional(Type.Integer({ minimum: 0 })),
          Binds: Type.Optional(Type.Union([Type.Null(), Type.Array(Type.String())])),
          AutoRemove: Type.Optional(Type.Boolean()),
          NetworkMode: Type.Optional(Type.String()),
        },
        { additionalProperties: true },
      ),
    ),
    NetworkingConfig: Type.Optional(
      Type.Union([Type.Null(), Type.Object({ EndpointsConfig: Type.Optional(Type.Union([Type.Null(), Type.Record(Type.String(), EndpointConfig)])) }, { additionalProperties: true })]),
    ),
  },
  { additionalProperties: true },
);
export type CreateBody = Static<typeof CreateBody>;

const MiB = 1024 * 1024;

/** Docker's words for "the daemon's default network". */
// "bridge" is Docker's name for its default network, which clients (compose, SDKs) send as is:
// it means the daemon's default here too (the bridged "bridge" network, or user mode on a host
// that cannot make bridges)
const isDefault = (name: string | undefined) => !name || name === 'default' || name === 'bridge';

/**
 * The endpoint settings unik can honour: none that fix an address. Aliases, links and driver
 * options are accepted and left aside (the network's DNS answers for instance names).
 */
export function checkEndpoint(network: string, ep: EndpointConfig | undefined): void {
  const ipam = ep?.IPAMConfig;
  if (ipam?.IPv4Address || ipam?.IPv6Address || ipam?.LinkLocalIPs?.length)
    throw invalid('STATIC_ADDRESS', `network ${network}: static addresses are not supported yet`, 'leave --ip out: an instance gets the next free address of its network');
  if (ep?.MacAddress) throw invalid('STATIC_MAC', `network ${network}: a chosen MAC address is not supported`, 'leave --mac-address out: each instance gets its own, derived from its id');
}

/**
 * Docker's HostConfig.NetworkMode and NetworkingConfig.EndpointsConfig → RunRequest.network:
 * undefined for the daemon's default ("default", empty), else the network's name or id, or
 * `user`. "host" and "none" pass on for core to refuse; "container:X" is refused here. A VM has
 * one network interface, so one network at a time.
 */
export function toNetwork(body: Pick<CreateBody, 'HostConfig' | 'NetworkingConfig'>): string | undefined {
  const mode = body.HostConfig?.NetworkMode ?? '';
  if (mode.startsWith('container:'))
    throw invalid('UNSUPPORTED_NETWORK', `network mode ${mode} is not possible for a unikernel: it is a VM with its own network interface, it cannot share another's`, 'put both on one network instead (docker network create, then --network NAME)');
  const endpoints = Object.entries(body.NetworkingConfig?.EndpointsConfig ?? {});
  const name = isDefault(mode) ? endpoints[0]?.[0] : mode;
  const same = (k: string) => k === name || (isDefault(k) && isDefault(name));
  const others = endpoints.filter(([k]) => !same(k)).map(([k]) => k);
  if (others.length)
    throw invalid('ONE_NETWORK', `a unikernel has one network interface: it cannot join ${[name || 'default', ...others].join(' and ')} at once`, 'create it on one network; `docker network connect` moves a stopped one to another');
  for (const [k, ep] of endpoints) checkEndpoint(k, ep);
  return isDefault(name) ? undefined : name;
}

/** Docker's create body → the request core's instances take (the same type the unik API makes). */
export function toRunRequest(body: CreateBody, name: string | undefined, imageName: string, freePort: () => Promise<number>): Promise<RunRequest> {
  return (async () => {
    if (body.Entrypoint && (Array.isArray(body.Entrypoint) ? body.Entrypoint.length : body.Entrypoint !== ''))
      throw invalid('NO_ENTRYPOINT', 'unik images have a fixed entrypoint (the app); --entrypoint is not supported');
    if (body.Tty) throw invalid('NO_TTY', 'unik instances have no TTY; run without -t');
    const network = toNetwork(body);
    const env: Record<string, string> = {};
    for (const kv of body.Env ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw invalid('BAD_ENV', `bad environment entry ${JSON.stringify(kv)}: want KEY=VALUE`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const ports: RunRequest['ports'] = [];
    for (const [key, bindings] of Object.entries(body.HostConfig?.PortBindings ?? {})) {
      const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(key);
      if (!m) throw invalid('BAD_PORT', `bad exposed port ${JSON.stringify(key)}`);
      for (const b of bindings ?? []) {
        const hostPort = b.HostPort ? Number(b.HostPort) : await freePort();
        // loopback unless asked: a unikernel is not published to the network by accident
        ports.push({ hostIp: b.HostIp || '127.0.0.1', hostPort, guestPort: Number(m[1]), protocol: (m[2] as 'tcp' | 'udp') ?? 'tcp' });
      }
    }
    const mounts: Record<string, string> = {};
    for (const bind of body.HostConfig?.Binds ?? []) {
      const [source, target] = bind.split(':');
      if (!source || !target) throw invalid('BAD_BIND', `bad volume ${JSON.stringify(bind)}: want VOLUME:/MOUNTPOINT`);
      if (source.startsWith('/') || source.startsWith('.'))
        throw invalid('NO_HOST_PATHS', `unik mounts volumes, not host paths (${source})`, 'create a volume (docker volume create, or unik create-volume --data DIR) and use -v VOLUME:/MOUNTPOINT');
      mounts[target] = source;
    }
    const cmd = body.Cmd == null ? [] : Array.isArray(body.Cmd) ? body.Cmd : [body.Cmd];
    return {
      image: imageName,
      name,
      env,
      ports,
      mounts,
      args: cmd,
      memoryMb: body.HostConfig?.Memory ? Math.ceil(body.HostConfig.Memory / MiB) : undefined,
      autoRemove: body.HostConfig?.AutoRemove ?? false,
      labels: body.Labels ?? {},
      network,
    };
  })();
}
