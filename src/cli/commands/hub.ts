// Hub commands: hub login, logout, push, pull, search (images to and from OCI registries).
// Credentials stay in this CLI (see ../hub-auth.ts); each call sends them to the daemon.
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { UnikApiError } from '../../client/errors.js';
import { localNameOf, type RegistryAuth, type SearchResult } from '../../client/hub.js';
import { contextFor } from '../context.js';
import { CliError } from '../errors.js';
import { credentialsFor, credentialsSource, dockerConfigPath, normalizeRegistry, registryOf, removeCredentials, saveCredentials } from '../hub-auth.js';
import { IMAGE_HEAD, collate, imageRow, printJson, printTable } from '../output.js';
import { ProgressPrinter } from '../progress.js';
import { clientCommand, withSigint } from './common.js';

export interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
}

export interface LoginIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stderr: { write(s: string): unknown };
  /** Asks on the terminal; `hidden` for the password. */
  prompt: (question: string, hidden: boolean) => Promise<string>;
}

/**
 * Asks `question` on a terminal and resolves with the line typed. With `hidden` nothing of
 * the answer is echoed: readline writes through a stream that is muted once the question is out.
 */
export function promptLine(
  question: string,
  hidden: boolean,
  input: NodeJS.ReadableStream = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  let muted = false;
  const sink = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      if (!muted) output.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input, output: sink, terminal: true });
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (hidden) output.write('\n'); // the Enter was muted too
      rl.close();
      fn();
    };
    rl.on('SIGINT', () => settle(() => reject(new DOMException('interrupted', 'AbortError'))));
    rl.on('close', () => settle(() => reject(new CliError('no answer: the input ended'))));
    rl.question(question, (answer) => settle(() => resolve(answer)));
    muted = hidden; // the question itself was written synchronously above
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** The username and password of `hub login`: flags, stdin (--password-stdin), else asked on the terminal. */
export async function loginCredentials(flags: LoginFlags, io: LoginIO): Promise<{ username: string; password: string }> {
  let password: string | undefined = flags.password;
  if (flags.passwordStdin) {
    if (flags.password !== undefined) throw new CliError('--password and --password-stdin are mutually exclusive');
    if (!flags.username) {
      throw new CliError('--password-stdin needs --username', 'e.g. echo "$TOKEN" | unik hub login REGISTRY -u USER --password-stdin');
    }
    password = (await readAll(io.stdin)).replace(/\r?\n$/, '');
  } else if (flags.password !== undefined) {
    io.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  }
  let username = flags.username;
  if (username === undefined) {
    if (!io.stdin.isTTY) throw new CliError('missing --username', 'give -u USERNAME (stdin is not a terminal to ask on)');
    username = (await io.prompt('Username: ', false)).trim();
  }
  if (password === undefined) {
    if (!io.stdin.isTTY) {
      throw new CliError('missing password', 'pipe it in with --password-stdin (or give -p PASSWORD); stdin is not a terminal to ask on');
    }
    password = await io.prompt('Password: ', true);
  }
  if (!username) throw new CliError('the username is empty');
  if (!password) throw new CliError('the password is empty');
  return { username, password };
}

/** A registry argument: `ghcr.io`, `127.0.0.1:5000`, or a URL (scheme and path dropped). */
function registryArg(value: string): string {
  const registry = normalizeRegistry(value);
  if (!registry || /\s/.test(registry)) throw new CliError(`invalid REGISTRY "${value}"`, 'e.g. 127.0.0.1:5000 or ghcr.io');
  return registry;
}

function refArg(ref: string): string {
  if (!ref || /\s/.test(ref) || ref.startsWith('/') || ref.endsWith('/')) {
    throw new CliError(`invalid REF "${ref}"`, 'expected REGISTRY/REPO[:TAG], e.g. 127.0.0.1:5000/unik/app:v1');
  }
  return ref;
}

/** A 401 without the daemon's own hint gets one saying what to log in to. */
function withLoginHint(err: unknown, registry: string, auth: RegistryAuth | undefined): unknown {
  if (!(err instanceof UnikApiError) || err.status !== 401 || err.hint) return err;
  const hint = auth
    ? `the registry refused the saved credentials of ${auth.username}: log in again with "unik hub login ${registry}"`
    : `log in first: unik hub login ${registry}`;
  return new UnikApiError(401, { message: err.message, code: err.code, hint });
}

async function loginAction(registryValue: string, flags: LoginFlags, cmd: Command): Promise<void> {
  const registry = registryArg(registryValue);
  const { client } = contextFor(cmd);
  const io: LoginIO = { stdin: process.stdin, stderr: process.stderr, prompt: (q, hidden) => promptLine(q, hidden) };
  const { username, password } = await loginCredentials(flags, io);
  await withSigint((signal) => client.hub.login({ registry, username, password, insecure: flags.insecure ?? false, signal }));
  // Only credentials the registry accepted are kept.
  await saveCredentials(registry, username, password);
  process.stdout.write('Login Succeeded\n');
}

async function logoutAction(registryValue: string): Promise<void> {
  const registry = registryArg(registryValue);
  if (await removeCredentials(registry)) process.stdout.write(`Removed login credentials for ${registry}\n`);
  else process.stdout.write(`Not logged in to ${registry}: no login credentials to remove\n`);
  if (credentialsSource(registry) === 'docker') {
    process.stderr.write(`note: ${dockerConfigPath()} still has credentials for ${registry}, which unik uses; "docker logout ${registry}" removes them\n`);
  }
}

interface TransferFlags {
  insecure?: boolean;
  json?: boolean;
}

async function pushAction(image: string, refValue: string, flags: TransferFlags, cmd: Command): Promise<void> {
  const ref = refArg(refValue);
  const registry = registryOf(ref);
  const auth = credentialsFor(registry);
  const { client } = contextFor(cmd);
  const progress = new ProgressPrinter(flags.json ? process.stderr : process.stdout);
  try {
    const pushed = await withSigint((signal) =>
      client.hub.push(image, ref, { auth, insecure: flags.insecure ?? false, signal }, (p) => progress.event(p)),
    );
    progress.finish();
    if (flags.json) printJson(pushed);
    else process.stdout.write(`pushed ${pushed.Ref || ref}@${pushed.Digest}${pushed.Platforms ? ` (an index of ${pushed.Platforms.join(', ')})` : ''}\n`);
  } catch (err) {
    throw withLoginHint(err, registry, auth);
  } finally {
    progress.finish();
  }
}

async function pullAction(refValue: string, flags: TransferFlags & { name?: string; force?: boolean; arch?: string }, cmd: Command): Promise<void> {
  const ref = refArg(refValue);
  const name = flags.name || localNameOf(ref);
  if (!name) throw new CliError(`cannot tell a local name from REF "${ref}"`, 'give one with --name NAME');
  const registry = registryOf(ref);
  const auth = credentialsFor(registry);
  const { client } = contextFor(cmd);
  const progress = new ProgressPrinter(flags.json ? process.stderr : process.stdout);
  try {
    const image = await withSigint((signal) =>
      client.hub.pull(ref, { name, auth, insecure: flags.insecure ?? false, force: flags.force ?? false, signal, ...(flags.arch ? { arch: flags.arch } : {}) }, (p) =>
        progress.event(p),
      ),
    );
    progress.finish();
    if (flags.json) printJson(image);
    else printTable(IMAGE_HEAD, [imageRow(image)]);
  } catch (err) {
    throw withLoginHint(err, registry, auth);
  } finally {
    progress.finish();
  }
}

export const SEARCH_HEAD = ['NAME', 'TAGS'];

export function searchRow(r: SearchResult): string[] {
  return [r.Name, (r.Tags ?? []).join(', ') || '-'];
}

async function searchAction(registryValue: string, term: string | undefined, flags: TransferFlags, cmd: Command): Promise<void> {
  const registry = registryArg(registryValue);
  const auth = credentialsFor(registry);
  const { client } = contextFor(cmd);
  let found: SearchResult[];
  try {
    found = await client.hub.search(registry, term, { auth, insecure: flags.insecure ?? false });
  } catch (err) {
    throw withLoginHint(err, registry, auth);
  }
  found.sort((a, b) => collate(a.Name, b.Name));
  if (flags.json) printJson(found);
  else printTable(SEARCH_HEAD, found.map(searchRow));
}

const INSECURE = 'the registry speaks plain http or has an untrusted certificate';

export function registerHubCommands(program: Command): void {
  const hub = program
    .command('hub')
    .description('push images to and pull them from OCI registries (credentials stay with the CLI)');

  clientCommand(hub, 'login', 'check credentials against a registry (through the daemon) and save them')
    .argument('<REGISTRY>', 'registry, e.g. 127.0.0.1:5000 or ghcr.io')
    .option('-u, --username <USER>', 'user name (asked on the terminal when missing)')
    .option('-p, --password <PASSWORD>', 'password (asked on the terminal when missing; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--insecure', INSECURE)
    .action(loginAction);

  hub
    .command('logout')
    .description('remove the saved credentials of a registry')
    .argument('<REGISTRY>', 'registry, e.g. 127.0.0.1:5000')
    .action(logoutAction);

  clientCommand(hub, 'push', 'push the local image IMAGE to REF (REGISTRY/REPO[:TAG])')
    .argument('<IMAGE>', 'local image name')
    .argument('<REF>', 'where to, e.g. 127.0.0.1:5000/unik/app:v1')
    .option('--insecure', INSECURE)
    .option('--json', 'print the result as JSON (progress goes to stderr)')
    .action(pushAction);

  clientCommand(hub, 'pull', 'pull REF (REGISTRY/REPO[:TAG]) into a local image')
    .argument('<REF>', 'what to pull, e.g. 127.0.0.1:5000/unik/app:v1')
    .option('--name <NAME>', 'local image name (default: the last part of the repository, e.g. app)')
    .option('--force', 'replace a local image with the same name')
    .option('--arch <ARCH>', "the architecture to take from a multi-architecture image: amd64 or arm64 (default: the daemon host's)")
    .option('--insecure', INSECURE)
    .option('--json', 'print the image as JSON (progress goes to stderr)')
    .action(pullAction);

  clientCommand(hub, 'search', "list a registry's repositories and their tags")
    .argument('<REGISTRY>', 'registry, e.g. 127.0.0.1:5000')
    .argument('[TERM]', 'only repositories whose name contains TERM')
    .option('--insecure', INSECURE)
    .option('--json', 'print JSON')
    .action(searchAction);
}
