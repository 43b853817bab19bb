import { Type, type Static } from '@sinclair/typebox';
import { invalid } from '../../model/errors.js';
import type { RunRequest } from '../../core/instances.js';

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
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);
export type CreateBody = Static<typeof CreateBody>;

const MiB = 1024 * 1024;

/** Docker's create body → the request core's instances take (the same type the unik API makes). */
export function toRunRequest(body: CreateBody, name: string | undefined, imageName: string, freePort: () => Promise<number>): Promise<RunRequest> {
  return (async () => {
    if (body.Entrypoint && (Array.isArray(body.Entrypoint) ? body.Entrypoint.length : body.Entrypoint !== ''))
      throw invalid('NO_ENTRYPOINT', 'unik images have a fixed entrypoint (the app); --entrypoint is not supported');
    if (body.Tty) throw invalid('NO_TTY', 'unik instances have no TTY; run without -t');
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
    };
  })();
}
