// A network namespace a test makes for itself, and a daemon inside it. Every bridge, tap, rule
// and private address the daemon makes, and all the traffic the test sends to them, stay inside:
// the test reaches in through `ip netns exec` (the CLI, curl) and a relay it starts in there.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { Daemon } from './harness.js';

const RELAY = join(import.meta.dirname, 'ns-relay.js');

export class NetNs {
  readonly name = `unik-t${randomBytes(4).toString('hex')}`;
  private relay?: ChildProcess;
  private readonly dir = mkdtempSync(join(tmpdir(), 'unik-ns-'));
  private agent?: Agent;

  /** Makes the namespace with its loopback up, and a relay into it. */
  async create(): Promise<this> {
    execFileSync('ip', ['netns', 'add', this.name]);
    this.sh(['ip', 'link', 'set', 'lo', 'up']);
    const sock = join(this.dir, 'relay.sock');
    this.relay = spawn('ip', ['netns', 'exec', this.name, process.execPath, RELAY, sock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await canConnect(sock)); i++) await sleep(50);
    // each connection opens the relay's socket and names its target on the first line
    this.agent = new Agent({
      connect: (opts, cb) => {
        const s = connect(sock);
        s.once('error', (e) => cb(e, null));
        s.once('connect', () => {
          s.write(`${opts.hostname} ${opts.port || 80}\n`);
          cb(null, s);
        });
      },
    });
    return this;
  }

  /** Runs a command inside the namespace; its stdout. */
  sh(argv: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** An HTTP request from inside the namespace. */
  fetch(url: string, init: RequestInit = {}): Promise<Response> {
    return undiciFetch(url, { ...(init as object), dispatcher: this.agent }) as unknown as Promise<Response>;
  }

  /** GETs a URL from inside until it answers 200; its body. */
  async httpUntil(url: string, deadlineMs = 60_000): Promise<string> {
    const until = Date.now() + deadlineMs;
    let last = '';
    while (Date.now() < until) {
      try {
        const res = await this.fetch(url, { signal: AbortSignal.timeout(2000) });
        const text = await res.text();
        if (res.status === 200) return text;
        last = `status ${res.status}: ${text.slice(0, 200)}`;
      } catch (e) {
        last = String((e as Error).cause ?? e);
      }
      await sleep(100);
    }
    throw new Error(`${url} did not answer 200 from inside ${this.name} within ${deadlineMs} ms (${last})`);
  }

  /** The namespace's links, addresses and unik's nftables tables, as JSON and text. */
  links(): { ifname: string; linkinfo?: { info_kind?: string }; addr_info?: { family: string; local: string; prefixlen: number }[] }[] {
    return JSON.parse(this.sh(['ip', '-j', '-d', 'addr', 'show']));
  }

  nftTables(): string[] {
    return this.sh(['nft', 'list', 'tables']).split('\n').filter((l) => l.includes('unik'));
  }

  async destroy(): Promise<void> {
    await this.agent?.close().catch(() => undefined);
    this.relay?.kill('SIGKILL');
    // anything still running in there (a VM of a failed test) goes with it
    const pids = (() => {
      try {
        return execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' }).split('\n').filter(Boolean);
      } catch {
        return [];
      }
    })();
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => execFile('ip', ['netns', 'del', this.name], r));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A daemon inside the namespace, with bridged networks on (its default network is the bridged one). */
export class NsDaemon extends Daemon {
  constructor(readonly ns: NetNs) {
    super();
    delete this.env.UNIK_BRIDGED;
    delete this.env.UNIK_DEFAULT_NETWORK;
  }

  protected override prefix(): string[] {
    return ['ip', 'netns', 'exec', this.ns.name];
  }

  protected override fetch(url: string, init?: RequestInit): Promise<Response> {
    return this.ns.fetch(url, init);
  }
}
