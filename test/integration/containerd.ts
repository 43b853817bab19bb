// A real containerd (Debian's 1.6) for integration tests: its own config, root, state, sockets,
// CNI config and IPAM state in a temp dir; never touches /var/lib/containerd or the host's CNI.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ContainerdOptions {
  /** absolute path of bin/unik-runc: registered as the CRI runtime handler "unik" */
  unikRunc?: string;
  /** 127.0.0.1:PORT of a plain-http registry (hosts.toml in config_path, for CRI; `hostsDir` for ctr) */
  registryHost?: string;
  /** the CRI sandbox (pause) image, e.g. 127.0.0.1:PORT/pause:3.9 */
  sandboxImage?: string;
  /** write a CNI bridge conflist (own bridge, own /24, host-local IPAM state in the temp dir) */
  cni?: boolean;
  /** extra environment for containerd, inherited by the shims and the runtimes they run */
  env?: Record<string, string>;
  /** containerd log level (default info) */
  logLevel?: 'debug' | 'info' | 'warn';
}

export interface CtrResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Shim sockets and ctr FIFOs go under these paths whatever the config says (containerd 1.6 hard-codes them). */
const HARDCODED_DIRS = ['/run/containerd/s', '/run/containerd/fifo', '/run/containerd/runc', '/run/containerd'];

/** All descendants of a process, deepest last. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

export class Containerd {
  readonly dir = mkdtempSync(join(tmpdir(), 'unik-ctrd-'));
  readonly root = join(this.dir, 'root');
  readonly state = join(this.dir, 'state');
  readonly socket = join(this.dir, 'containerd.sock');
  readonly configFile = join(this.dir, 'config.toml');
  /** registry hosts.toml tree (config_path); pass to `ctr images pull --hosts-dir` */
  readonly hostsDir = join(this.dir, 'certs.d');
  /** runc state root for the runtimes this config defines (`--runc-root` for ctr run) */
  readonly runcRoot = join(this.dir, 'runc');
  /** FIFOs for `ctr run --fifo-dir` */
  readonly fifoDir = join(this.dir, 'fifo');
  readonly cniConfDir = join(this.dir, 'cni', 'net.d');
  readonly cniDataDir = join(this.dir, 'cni', 'ipam');
  /** CRI pod netns mounts (netns_mounts_under_state_dir) */
  readonly netnsDir = join(this.state, 'io.containerd.grpc.v1.cri', 'netns');
  /** the bridge CNI creates (≤ 15 chars) and its subnet */
  readonly bridge = `unikbr${randomBytes(3).toString('hex')}`;
  subnet = '';
  readonly cniNetwork = `unik-test-${randomBytes(3).toString('hex')}`;
  proc?: ChildProcess;
  private readonly logFile = join(this.dir, 'containerd.log');
  private readonly preexisting = new Set(HARDCODED_DIRS.filter((d) => existsSync(d)));
  private ipForward?: string;

  constructor(readonly opts: ContainerdOptions = {}) {}

  /** The pod network's gateway (the bridge's address), e.g. 10.88.123.1 */
  get gateway(): string {
    return this.subnet.replace(/0\/24$/, '1');
  }

  async start(): Promise<void> {
    for (const d of [this.root, this.state, this.hostsDir, this.runcRoot, this.fifoDir, this.cniConfDir, this.cniDataDir]) mkdirSync(d, { recursive: true });
    if (this.opts.registryHost) {
      const host = this.opts.registryHost;
      mkdirSync(join(this.hostsDir, host), { recursive: true });
      writeFileSync(join(this.hostsDir, host, 'hosts.toml'), `server = "http://${host}"\n\n[host."http://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n`);
    }
    if (this.opts.cni) this.writeCni();
    writeFileSync(this.configFile, this.config());
    const log = openSync(this.logFile, 'a');
    // unik-runc (called by the shims containerd starts) keeps its boot snapshots in the temp dir
    const env = { ...process.env, UNIK_RUNC_CACHE: join(this.dir, 'unik-runc-snapshots'), ...this.opts.env };
    this.proc = spawn('containerd', ['--config', this.configFile], { stdio: ['ignore', log, log], detached: false, env });
    closeSync(log);
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      if (this.proc.exitCode !== null) throw new Error(`containerd exited ${this.proc.exitCode}:\n${this.logs()}`);
      if (await this.answers()) break;
      await sleep(100);
    }
    if (!(await this.answers())) throw new Error(`containerd did not answer on ${this.socket}:\n${this.logs()}`);
    // The CRI plugin registers its services a moment after the socket opens.
    while (Date.now() < until) {
      const r = await this.ctr(['plugins', 'ls']);
      const cri = r.stdout.split('\n').find((l) => /\bcri\b/.test(l) && l.includes('io.containerd.grpc.v1'));
      if (cri && /\bok\b/.test(cri)) return;
      if (cri && /\berror\b/.test(cri)) throw new Error(`the CRI plugin failed to load:\n${this.logs()}`);
      await sleep(100);
    }
    throw new Error(`the CRI plugin did not load:\n${this.logs()}`);
  }

  private async answers(): Promise<boolean> {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(this.socket);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    return ok && (await this.ctr(['version'], { timeoutMs: 5000 })).code === 0;
  }

  private writeCni(): void {
    const used = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' }) + execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
    for (let i = 0; i < 200 && !this.subnet; i++) {
      const octet = 100 + Math.floor(Math.random() * 150);
      if (!used.includes(`10.88.${octet}.`)) this.subnet = `10.88.${octet}.0/24`;
    }
    if (!this.subnet) throw new Error('no free 10.88.x.0/24 for the CNI bridge');
    this.ipForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const conflist = {
      cniVersion: '0.4.0',
      name: this.cniNetwork,
      plugins: [
        {
          type: 'bridge',
          bridge: this.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir: this.cniDataDir, ranges: [[{ subnet: this.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
    writeFileSync(join(this.cniConfDir, '10-unik-test.conflist'), JSON.stringify(conflist, null, 2));
    writeFileSync(join(this.cniConfDir, '99-loopback.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'lo', type: 'loopback' }));
  }

  private config(): string {
    const o = this.opts;
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    const runtimeOpts = (binary?: string) => `  BinaryName = ${JSON.stringify(binary ?? '')}\n  Root = ${JSON.stringify(this.runcRoot)}\n  SystemdCgroup = false\n`;
    return `version = 2
root = ${JSON.stringify(this.root)}
state = ${JSON.stringify(this.state)}
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = ${JSON.stringify(this.socket)}

[ttrpc]
  address = ${JSON.stringify(this.socket + '.ttrpc')}

[debug]
  level = ${JSON.stringify(o.logLevel ?? 'info')}

[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(join(this.dir, 'opt'))}

[${cri}]
  sandbox_image = ${JSON.stringify(o.sandboxImage ?? 'registry.k8s.io/pause:3.6')}
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true

[${cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = ${JSON.stringify(this.cniConfDir)}
  max_conf_num = 1

[${cri}.containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[${cri}.containerd.runtimes.runc.options]
${runtimeOpts()}
${
  o.unikRunc
    ? `[${cri}.containerd.runtimes.unik]
  runtime_type = "io.containerd.runc.v2"
  pod_annotations = ["sh.unik.*"]
  container_annotations = ["sh.unik.*"]
[${cri}.containerd.runtimes.unik.options]
${runtimeOpts(o.unikRunc)}`
    : ''
}
[${cri}.registry]
  config_path = ${JSON.stringify(this.hostsDir)}
`;
  }

  /** `ctr -a SOCKET -n NAMESPACE ARGS…` (namespace default "default"). */
  ctr(args: string[], opts: { namespace?: string; timeoutMs?: number; input?: string } = {}): Promise<CtrResult> {
    return new Promise((resolve) => {
      const child = execFile(
        'ctr',
        ['-a', this.socket, '-n', opts.namespace ?? 'default', ...args],
        { timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** `ctr images pull` through this containerd's hosts dir (plain http to the test registry). */
  async pull(ref: string, opts: { namespace?: string; timeoutMs?: number } = {}): Promise<CtrResult> {
    const r = await this.ctr(['images', 'pull', '--hosts-dir', this.hostsDir, ref], opts);
    if (r.code !== 0) throw new Error(`ctr images pull ${ref} failed (${r.code}): ${r.stderr}`);
    return r;
  }

  /** containerd's log (the last `max` characters). */
  logs(max = 20_000): string {
    try {
      const s = readFileSync(this.logFile, 'utf8');
      return s.length > max ? s.slice(-max) : s;
    } catch {
      return '';
    }
  }

  /** pids of shims (containerd-shim-runc-v2 …) that belong to this containerd */
  shimPids(): number[] {
    const out: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        if (argv[0]?.includes('containerd-shim') && argv.includes(this.socket)) out.push(Number(p));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  /** Removes what tests left: CRI pods (so CNI tears down their network), then every task and container, in every namespace. */
  async cleanup(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    try {
      const { CriClient } = await import('./cri-client.js');
      const cri = new CriClient(this.socket);
      try {
        const pods = await cri.listPodSandbox();
        for (const p of pods) {
          await cri.stopPodSandbox(p.id).catch(() => undefined);
          await cri.removePodSandbox(p.id).catch(() => undefined);
        }
      } finally {
        cri.close();
      }
    } catch {
      /* CRI not loaded: fall through */
    }
    const ns = await this.ctr(['namespaces', 'ls', '-q']);
    for (const n of ns.stdout.split('\n').filter(Boolean)) {
      const tasks = await this.ctr(['tasks', 'ls', '-q'], { namespace: n });
      for (const t of tasks.stdout.split('\n').filter(Boolean)) {
        await this.ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', t], { namespace: n, timeoutMs: 15_000 });
        await this.ctr(['tasks', 'rm', '-f', t], { namespace: n, timeoutMs: 30_000 });
      }
      const cs = await this.ctr(['containers', 'ls', '-q'], { namespace: n });
      for (const c of cs.stdout.split('\n').filter(Boolean)) await this.ctr(['containers', 'rm', c], { namespace: n, timeoutMs: 30_000 });
    }
  }

  /** Cleans up, stops containerd and its shims, unmounts and removes everything it made (temp dir, bridge, netns). */
  async stop(): Promise<void> {
    try {
      await this.cleanup();
    } catch {
      /* best effort: the rest still runs */
    }
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, sleep(10_000)]);
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await gone;
      }
    }
    // Shims still alive (their tasks could not be deleted): kill them and everything under them
    // (container processes, a unikernel's QEMU), so no process outlives the test.
    const shims = this.shimPids();
    for (const pid of [...shims.flatMap(descendants), ...shims]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(this.shimPids().length ? 500 : 0);
    // A killed shim leaves its socket (/run/containerd/s/<hash>, named in the bundle's `address`)
    // and, with the default runc root, runc's state dir of the task.
    const tasks = join(this.state, 'io.containerd.runtime.v2.task');
    for (const ns of existsSync(tasks) ? readdirSync(tasks) : []) {
      for (const id of readdirSync(join(tasks, ns))) {
        try {
          const address = readFileSync(join(tasks, ns, id, 'address'), 'utf8').trim().replace(/^unix:\/\//, '');
          if (address.startsWith('/run/containerd/s/')) rmSync(address, { force: true });
        } catch {
          /* no address file */
        }
        if (shims.length) rmSync(join('/run/containerd/runc', ns, id), { recursive: true, force: true });
      }
    }
    // Mounts under the temp dir (overlay rootfs, netns bind mounts, shm), deepest first.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
      .filter((m) => m.startsWith(this.dir + '/'))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    if (this.opts.cni) {
      try {
        execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
      } catch {
        /* never created, or already gone */
      }
      if (this.ipForward !== undefined) {
        try {
          writeFileSync('/proc/sys/net/ipv4/ip_forward', this.ipForward);
        } catch {
          /* read-only */
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    // Shim sockets, FIFOs and the default runc root live under /run/containerd whatever the config says: remove what is empty and was not there before.
    for (const d of HARDCODED_DIRS) {
      if (this.preexisting.has(d)) continue;
      try {
        for (const sub of readdirSync(d)) {
          const full = join(d, sub);
          try {
            rmdirSync(full); // empty namespace dirs (fifo/default, runc/default)
          } catch {
            /* not empty or not a dir */
          }
        }
        rmdirSync(d);
      } catch {
        /* not empty (another containerd uses it), or absent */
      }
    }
  }

  /** Is there still a network namespace, bridge or mount of this containerd? (for leak assertions) */
  leftovers(): string[] {
    const out: string[] = [];
    if (existsSync(this.netnsDir)) for (const n of readdirSync(this.netnsDir)) out.push(`netns ${n}`);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(this.dir + '/') && l.includes('netns'));
    out.push(...mounts.map((m) => `mount ${m.split(' ')[1]}`));
    for (const pid of this.shimPids()) out.push(`shim ${pid}`);
    return out;
  }
}
