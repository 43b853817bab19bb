import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './harness.js';

/** Debian's docker-registry (distribution 2.8) on 127.0.0.1, storage in a temp dir. */
export class Registry {
  readonly dir = mkdtempSync(join(tmpdir(), 'unik-registry-'));
  port = 0;
  private proc?: ChildProcess;

  /** users: htpasswd basic auth; token: the Bearer flow against a token server */
  constructor(
    private readonly users?: Record<string, string>,
    private readonly token?: { realm: string; issuer: string; cert: string },
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port ||= await freePort();
    let auth = '';
    if (this.token) {
      auth = `auth:\n  token: {realm: "${this.token.realm}", service: unik-test-registry, issuer: ${this.token.issuer}, rootcertbundle: ${this.token.cert}}\n`;
    } else if (this.users) {
      const lines = Object.entries(this.users).map(([u, p]) => execFileSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' }).trim());
      writeFileSync(join(this.dir, 'htpasswd'), lines.join('\n') + '\n');
      auth = `auth:\n  htpasswd: {realm: unik-test, path: ${join(this.dir, 'htpasswd')}}\n`;
    }
    writeFileSync(
      join(this.dir, 'config.yml'),
      `version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: ${join(this.dir, 'data')}}\n  delete: {enabled: true}\nhttp:\n  addr: ${this.host}\n${auth}`,
    );
    this.proc = spawn('docker-registry', ['serve', join(this.dir, 'config.yml')], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://${this.host}/v2/`).then(() => true, () => false)) return;
      await sleep(100);
    }
    throw new Error('docker-registry did not start');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The file that holds a blob in the registry's storage (to corrupt it on purpose). */
  blobFile(digest: string): string {
    const hex = digest.replace('sha256:', '');
    return join(this.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  }
}
