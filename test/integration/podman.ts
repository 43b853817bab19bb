import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, freePort } from './harness.js';

/**
 * podman's Docker API on 127.0.0.1, with its own storage and config (this sandbox needs explicit
 * ulimits), holding `localhost/gohttp`: the Go example's static binary as a container image.
 * The reference server for the Docker conformance test and the API benchmark.
 */
export class Podman {
  readonly dir = mkdtempSync(join(tmpdir(), 'unik-podman-'));
  port = 0;
  private proc?: ChildProcess;
  private readonly env = { ...process.env, CONTAINERS_REGISTRIES_CONF: join(this.dir, 'registries.conf'), CONTAINERS_CONF: join(this.dir, 'containers.conf') };
  private readonly storage = ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot')];

  /** Runs the podman CLI on this instance's storage. */
  podman(args: string[]): void {
    execFileSync('podman', [...this.storage, ...args], { env: this.env, stdio: 'ignore' });
  }

  async start(): Promise<void> {
    writeFileSync(join(this.dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    writeFileSync(join(this.dir, 'containers.conf'), '[containers]\ndefault_ulimits=["nofile=1024:1024","nproc=1024:1024"]\n');
    mkdirSync(join(this.dir, 'rootfs'));
    execFileSync('go', ['build', '-o', join(this.dir, 'rootfs', 'app'), '.'], { cwd: join(ROOT, 'examples/go-http'), env: { ...process.env, CGO_ENABLED: '0', GOCACHE: join(this.dir, 'gocache') } });
    execFileSync('tar', ['-C', join(this.dir, 'rootfs'), '-cf', join(this.dir, 'rootfs.tar'), '.']);
    this.podman(['import', '--change', 'CMD ["/app"]', join(this.dir, 'rootfs.tar'), 'localhost/gohttp:latest']);
    this.port = await freePort();
    this.proc = spawn('podman', [...this.storage, 'system', 'service', '--time=0', `tcp://127.0.0.1:${this.port}`], { env: this.env, stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://127.0.0.1:${this.port}/_ping`).then(() => true, () => false)) return;
      await sleep(100);
    }
    throw new Error('podman system service did not start');
  }

  async destroy(): Promise<void> {
    this.proc?.kill('SIGTERM');
    try {
      this.podman(['rm', '-af']);
    } catch {
      /* best effort */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
