import { statSync } from 'node:fs';
import { arch, cpus, release, totalmem, type } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Core } from '../../core/core.js';
import { host } from './serialize.js';

export const API_VERSION = '1.43';
export const MIN_API_VERSION = '1.24';
/** when this daemon's code was compiled */
const BUILD_TIME = statSync(new URL(import.meta.url)).mtime.toISOString();

export function systemRoutes(app: FastifyInstance, core: Core, version: string): void {
  const ping = async (_req: unknown, reply: import('fastify').FastifyReply) =>
    reply.header('Ostype', 'linux').header('Docker-Experimental', 'false').header('Cache-Control', 'no-cache, no-store, must-revalidate').header('Pragma', 'no-cache').type('text/plain; charset=utf-8').send('OK');
  app.get('/_ping', ping); // Fastify answers HEAD /_ping too (the CLI's first call)

  app.get('/version', async () => ({
    Platform: { Name: 'unik' },
    Components: [{ Name: 'unik', Version: version, Details: { ApiVersion: API_VERSION } }],
    Version: version,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: `node ${process.version}`,
    Os: type().toLowerCase(),
    Arch: arch() === 'x64' ? 'amd64' : arch(),
    KernelVersion: release(),
    BuildTime: BUILD_TIME,
  }));

  app.get('/info', async () => {
    const all = core.instances.list();
    const count = (...states: string[]) => all.filter((i) => states.includes(i.status.state)).length;
    const providers = await core.providers();
    return {
      ID: 'unik',
      Containers: all.length,
      ContainersRunning: count('running', 'pending'),
      ContainersPaused: 0,
      ContainersStopped: count('stopped', 'error', 'created'),
      Images: core.images.list().length,
      Driver: 'unik',
      DriverStatus: [['unikernels', 'linux base, one app per VM']],
      Plugins: { Volume: ['unik'], Network: ['user'], Authorization: null, Log: ['console'] },
      MemoryLimit: true,
      SwapLimit: false,
      CpuCfsPeriod: false,
      CpuCfsQuota: false,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'console',
      CgroupDriver: 'none',
      NEventsListener: core.events.listenerCount,
      KernelVersion: release(),
      OperatingSystem: `unik ${version}`,
      OSType: 'linux',
      Architecture: arch() === 'x64' ? 'x86_64' : arch(),
      NCPU: cpus().length,
      MemTotal: totalmem(),
      IndexServerAddress: '',
      RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
      DockerRootDir: core.paths.home,
      Name: host(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: version,
      Runtimes: Object.fromEntries(providers.map((p) => [p.name, { path: p.name }])),
      DefaultRuntime: 'qemu',
      Swarm: { LocalNodeState: 'inactive', ControlAvailable: false, NodeID: '', NodeAddr: '', RemoteManagers: null, Nodes: 0, Managers: 0 },
      LiveRestoreEnabled: true,
      Isolation: 'vm',
      InitBinary: 'unik-init',
      SecurityOptions: ['name=vm-isolation'],
      Warnings: providers.filter((p) => !p.available || /TCG/.test(p.reason)).map((p) => `WARNING: ${p.name}: ${p.reason}`),
    };
  });
}
