// Where the daemon is: --host flag > $UNIK_HOST > $UNIK_HOME/client-config.yaml > default.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './errors.js';

export const DEFAULT_PORT = 3000;
export const DEFAULT_TARGET = `127.0.0.1:${DEFAULT_PORT}`;

type Env = Record<string, string | undefined>;

export interface Target {
  /** `host:port`, or a full http(s) URL if the user gave one. */
  address: string;
  source: 'flag' | 'env' | 'config' | 'default';
  /** The config file consulted (also where `unik target` writes). */
  configPath: string;
}

export function unikHome(env: Env = process.env): string {
  return env.UNIK_HOME || join(homedir(), '.unik');
}

export function clientConfigPath(env: Env = process.env): string {
  return join(unikHome(env), 'client-config.yaml');
}

/** Reads `host:` from the one-line 2016 client config (`host: "127.0.0.1:3000"`). */
export function parseClientConfig(text: string): string | undefined {
  for (const raw of text.split(/\r?\n/)) {
    const m = /^\s*host\s*:\s*(.*?)\s*$/.exec(raw);
    if (!m) continue;
    let value = m[1] ?? '';
    const quoted = /^(["'])(.*)\1(\s+#.*)?$/.exec(value);
    if (quoted) value = quoted[2] ?? '';
    else value = value.replace(/\s+#.*$/, '');
    return value.trim() || undefined;
  }
  return undefined;
}

export function formatClientConfig(address: string): string {
  return `host: ${JSON.stringify(address)}\n`;
}

export interface ResolveOptions {
  flag?: string | undefined;
  env?: Env;
  configPath?: string | undefined;
}

export function resolveTarget(opts: ResolveOptions = {}): Target {
  const env = opts.env ?? process.env;
  const configPath = opts.configPath ?? clientConfigPath(env);
  if (opts.flag) return { address: opts.flag, source: 'flag', configPath };
  if (env.UNIK_HOST) return { address: env.UNIK_HOST, source: 'env', configPath };
  if (existsSync(configPath)) {
    const host = parseClientConfig(readFileSync(configPath, 'utf8'));
    if (!host) {
      throw new CliError(`${configPath} has no "host:" line`, 'rewrite it with: unik target --host HOST --port PORT');
    }
    return { address: host, source: 'config', configPath };
  }
  return { address: DEFAULT_TARGET, source: 'default', configPath };
}

/** The base URL for UnikClient: adds `http://` and the default port when missing. */
export function targetUrl(address: string): string {
  if (/^https?:\/\//i.test(address)) return address.replace(/\/+$/, '');
  return `http://${withPort(address, DEFAULT_PORT)}`;
}

/** Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address. */
export function splitHostPort(address: string): { host: string; port?: number } {
  const v6 = /^\[(.*)\](?::(\d+))?$/.exec(address);
  if (v6) return v6[2] ? { host: v6[1] ?? '', port: Number(v6[2]) } : { host: v6[1] ?? '' };
  const m = /^([^:]*):(\d+)$/.exec(address);
  if (m) return { host: m[1] ?? '', port: Number(m[2]) };
  return { host: address }; // a name, IPv4, or bare IPv6 (several colons)
}

/** `host` → `host:port`, keeping a port already there; brackets IPv6 addresses. */
export function withPort(address: string, port: number): string {
  const hp = splitHostPort(address);
  const host = hp.host.includes(':') ? `[${hp.host}]` : hp.host;
  return `${host}:${hp.port ?? port}`;
}

/** The host part of an address, without port or brackets. */
export function hostOf(address: string): string {
  const url = new URL(targetUrl(address));
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

export async function writeTarget(address: string, configPath: string): Promise<void> {
  await mkdir(dirname(configPath), { recursive: true });
  await writeFile(configPath, formatClientConfig(address));
}
