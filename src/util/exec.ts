import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { splitLines } from './lines.js';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr interleaved, as a person would have seen them */
  output: string;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** called with each line of output as it arrives (progress) */
  onLine?: (line: string) => void;
  /** keep at most this many bytes of output (the tail), default 256 KiB */
  maxOutput?: number;
  /** written to the program's stdin, which is then closed */
  input?: string;
}

/** Runs a program with an argv array (never a shell) and collects its output. */
export function execFileCollect(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const max = opts.maxOutput ?? 256 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let output = '';
    const take = (line: string) => {
      output += line + '\n';
      if (output.length > max * 2) output = output.slice(-max);
      opts.onLine?.(line);
    };
    splitLines(child.stdout!, take);
    splitLines(child.stderr!, take);
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, output: output.slice(-max) }));
  });
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** Where the program is: the path itself if it exists, else the first match on PATH; undefined if not installed. */
export function which(name: string): string | undefined {
  if (name.includes('/')) return existsSync(name) ? name : undefined;
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) if (d && existsSync(join(d, name))) return join(d, name);
  return undefined;
}

/** Is the program installed: a path that exists, or a name found on PATH? */
export function onPath(name: string): boolean {
  return which(name) !== undefined;
}
