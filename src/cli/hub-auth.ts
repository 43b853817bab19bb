// Registry credentials of `unik hub`. The CLI keeps them (the daemon never stores any) in
// $UNIK_HOME/hub-config.json, shaped like ~/.docker/config.json, which is read as a fallback.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { RegistryAuth } from '../client/hub.js';
import { CliError } from './errors.js';
import { unikHome } from './target.js';

type Env = Record<string, string | undefined>;

/** Where a ref without a registry part goes, as with docker. */
export const DOCKER_HUB = 'docker.io';

/** Other names of Docker Hub; docker login stores it as `https://index.docker.io/v1/`. */
const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);

/** Owner-only: the file holds passwords. */
const FILE_MODE = 0o600;

interface AuthEntry {
  /** base64 of `USER:PASSWORD` */
  auth?: string;
  [key: string]: unknown;
}

interface HubConfig {
  auths?: Record<string, AuthEntry>;
  [key: string]: unknown;
}

export function hubConfigPath(env: Env = process.env): string {
  return join(unikHome(env), 'hub-config.json');
}

/** docker's own file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: Env = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/**
 * The registry a REF names: its first path component when that has a "." or ":" or is
 * `localhost` (`127.0.0.1:5000/a/b:v1` → `127.0.0.1:5000`), else Docker Hub (`docker.io`).
 */
export function registryOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = ref.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return normalizeRegistry(first);
  return DOCKER_HUB;
}

/**
 * A registry as given to login/logout/search or found as a config key: without scheme and
 * path (`https://ghcr.io/v2/` → `ghcr.io`), Docker Hub's aliases as `docker.io`.
 */
export function normalizeRegistry(input: string): string {
  const host = input.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split('/')[0] ?? '';
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/** `base64(USER:PASSWORD)` → its parts; the password may contain ":". */
function decodeAuth(auth: unknown): { username: string; password: string } | undefined {
  if (typeof auth !== 'string' || !auth) return undefined;
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function encodeAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/** The keys of `auths` that mean `registry`: as is, with a scheme, or any spelling normalizing to it. */
function keysFor(auths: Record<string, AuthEntry>, registry: string): string[] {
  const wanted = normalizeRegistry(registry);
  const exact = [registry, `https://${registry}`, `http://${registry}`].filter((k) => Object.hasOwn(auths, k));
  const others = Object.keys(auths).filter((k) => !exact.includes(k) && normalizeRegistry(k) === wanted);
  return [...exact, ...others];
}

function lookup(config: HubConfig, registry: string): RegistryAuth | undefined {
  const auths = config.auths ?? {};
  for (const key of keysFor(auths, registry)) {
    const creds = decodeAuth(auths[key]?.auth);
    if (creds) return { ...creds, serveraddress: registry };
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** unik's file: absent → empty; unreadable or malformed → CliError (never silently overwritten). */
function readHubConfig(path: string): HubConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    config = undefined;
  }
  if (!isObject(config) || (config.auths !== undefined && !isObject(config.auths))) {
    throw new CliError(`${path} is not a valid credentials file`, `fix it, or remove it and log in again with "unik hub login"`);
  }
  return config as HubConfig;
}

/** docker's file is not ours: anything wrong with it just means no credentials from it. */
function readDockerConfig(path: string): HubConfig {
  try {
    const config: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isObject(config) && isObject(config.auths) ? (config as HubConfig) : {};
  } catch {
    return {};
  }
}

/** Writes a temp file (mode 0600) next to `path`, then renames it over `path`: never half-written. */
async function writeHubConfig(path: string, config: HubConfig): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', FILE_MODE);
  try {
    try {
      await fh.writeFile(JSON.stringify(config, null, 2) + '\n');
      // The umask cannot widen 0600, but a file system may ignore the create mode; the rename
      // below gives `path` this file's mode, replacing whatever mode an old file had.
      await fh.chmod(FILE_MODE);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Credentials for `registry`: unik's file first, then docker's `auths` (also under http(s):// keys). */
export function credentialsFor(registry: string, env: Env = process.env): RegistryAuth | undefined {
  return lookup(readHubConfig(hubConfigPath(env)), registry) ?? lookup(readDockerConfig(dockerConfigPath(env)), registry);
}

/** Where credentialsFor would find `registry`'s credentials, if anywhere. */
export function credentialsSource(registry: string, env: Env = process.env): 'unik' | 'docker' | undefined {
  if (lookup(readHubConfig(hubConfigPath(env)), registry)) return 'unik';
  if (lookup(readDockerConfig(dockerConfigPath(env)), registry)) return 'docker';
  return undefined;
}

/** Stores USER:PASSWORD for `registry` in unik's file (replacing other spellings of the same registry). */
export async function saveCredentials(registry: string, username: string, password: string, env: Env = process.env): Promise<void> {
  const path = hubConfigPath(env);
  const config = readHubConfig(path);
  const auths = { ...config.auths };
  for (const key of keysFor(auths, registry)) delete auths[key];
  auths[normalizeRegistry(registry)] = { auth: encodeAuth(username, password) };
  await writeHubConfig(path, { ...config, auths });
}

/** Removes `registry` from unik's file (docker's is left alone); false if it had no entry. */
export async function removeCredentials(registry: string, env: Env = process.env): Promise<boolean> {
  const path = hubConfigPath(env);
  const config = readHubConfig(path);
  const auths = { ...config.auths };
  const keys = keysFor(auths, registry);
  if (keys.length === 0) return false;
  for (const key of keys) delete auths[key];
  await writeHubConfig(path, { ...config, auths });
  return true;
}
