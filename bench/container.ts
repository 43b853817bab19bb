// The container reference: examples/go-http's static binary as a container image (a tar of the
// one file, `podman import`ed) run by podman with runc, in its own --root/--runroot and
// containers.conf (this sandbox needs explicit ulimits, ecosystem.md §1.7; its cgroup v1/v2
// hybrid needs runc rather than crun), published with -p as usual.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../test/integration/harness.js';
import { rssKb, waitOk } from './lib.js';

export const CONTAINER_RUNTIME = 'podman + runc, -p via CNI';

export interface ContainerBoot {
  /** ms from `podman run -d` to the first HTTP 200; undefined if it never answered */
  ms?: number;
  name: string;
  /** the app's pid and its conmon's (host pids) */
  appPid: number;
  conmonPid: number;
  stop(): void;
}

export class PodmanRef {
  readonly dir = mkdtempSync(join(tmpdir(), 'unik-bench-podman-'));
  readonly image = 'localhost/unik-bench-gohttp:latest';
  private readonly env = { ...process.env, CONTAINERS_CONF: join(this.dir, 'containers.conf'), CONTAINERS_REGISTRIES_CONF: join(this.dir, 'registries.conf') };
  private n = 0;

  podman(args: string[]): string {
    return execFileSync('podman', ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), ...args], { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  version(): string {
    return this.podman(['version', '--format', '{{.Client.Version}}']).trim();
  }

  /** Makes the image from the binary; returns its size in bytes as podman reports it. */
  setup(binary: string): number {
    writeFileSync(join(this.dir, 'containers.conf'), '[containers]\ndefault_ulimits=["nofile=1024:1024","nproc=1024:1024"]\n[engine]\nruntime="runc"\n');
    writeFileSync(join(this.dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    mkdirSync(join(this.dir, 'rootfs'));
    execFileSync('cp', [binary, join(this.dir, 'rootfs', 'app')]);
    execFileSync('tar', ['-C', join(this.dir, 'rootfs'), '--owner=0', '--group=0', '-cf', join(this.dir, 'rootfs.tar'), '.']);
    this.podman(['import', '--change', 'CMD ["/app"]', '--change', 'ENV PORT=8080', join(this.dir, 'rootfs.tar'), this.image]);
    return Number(this.podman(['image', 'inspect', '--format', '{{.Size}}', this.image]).trim());
  }

  /** `podman run -d -p` → first 200 on /ping_test. */
  async boot(deadlineMs = 60_000, keep = false): Promise<ContainerBoot> {
    const port = await freePort();
    const name = `bench${this.n++}`;
    const t0 = performance.now();
    const r = spawnSync('podman', ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), 'run', '-d', '--name', name, '-p', `127.0.0.1:${port}:8080`, this.image], { env: this.env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`podman run: ${r.stderr}`);
    const ok = await waitOk(`http://127.0.0.1:${port}/ping_test`, deadlineMs);
    const ms = ok ? performance.now() - t0 : undefined;
    const [appPid, conmonPid] = this.podman(['inspect', '--format', '{{.State.Pid}} {{.State.ConmonPid}}', name]).trim().split(/\s+/).map(Number);
    const stop = () => {
      try {
        this.podman(['rm', '-f', '-t', '0', name]);
      } catch {
        /* gone */
      }
    };
    if (!keep) stop();
    return { ms, name, appPid: appPid ?? 0, conmonPid: conmonPid ?? 0, stop };
  }

  /** `podman run -d -p` without waiting for the app, so that many start at once (the density bench). */
  runDetached(name: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const p = spawn('podman', ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), 'run', '-d', '--name', name, '-p', `127.0.0.1:${port}:8080`, this.image], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`podman run ${name}: ${err.trim()}`))));
    });
  }

  /** The app's and conmon's host pids of running containers. */
  pids(names: string[]): { appPid: number; conmonPid: number }[] {
    if (!names.length) return [];
    return this.podman(['inspect', '--format', '{{.State.Pid}} {{.State.ConmonPid}}', ...names])
      .trim()
      .split('\n')
      .map((l) => {
        const [appPid, conmonPid] = l.trim().split(/\s+/).map(Number);
        return { appPid: appPid ?? 0, conmonPid: conmonPid ?? 0 };
      });
  }

  /** Removes every container (not the image). */
  removeAll(): void {
    this.podman(['rm', '-af', '-t', '0']);
  }

  /** host RSS (kB) of a running container: its conmon plus the app process */
  rssKb(b: ContainerBoot): { conmonKb: number; appKb: number } {
    return { conmonKb: rssKb(b.conmonPid), appKb: rssKb(b.appPid) };
  }

  destroy(): void {
    try {
      this.podman(['rm', '-af', '-t', '0']);
      this.podman(['rmi', '-af']);
    } catch {
      /* best effort */
    }
    try {
      execFileSync('umount', ['-R', join(this.dir, 'root', 'overlay')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
