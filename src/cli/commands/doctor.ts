// `unik doctor`: what the daemon's host has and lacks, one line a check, each problem with the
// command that fixes it. Asked of the daemon (builds and VMs run on its host); when no daemon
// answers, the same checks run here, in the CLI, beside how to start one.
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { HostCheckJson } from '../../api/types.js';
import { DaemonUnreachableError, UnikApiError } from '../../client/errors.js';
import { which } from '../../util/exec.js';
import { contextFor, type Ctx } from '../context.js';
import { printJson } from '../output.js';
import { DEFAULT_PORT, hostOf, targetUrl } from '../target.js';
import { clientCommand } from './common.js';

export function registerDoctorCommand(program: Command): void {
  clientCommand(program, 'doctor', "check what the daemon's host has and lacks (QEMU, KVM, kernel tools, languages, networking, disk), with the fix for each problem")
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const checks = await gather(contextFor(cmd));
      if (flags.json) printJson(checks);
      else process.stdout.write(renderChecks(checks));
      if (checks.some((c) => !c.Ok && c.Required)) process.exitCode = 1;
    });
}

/** The daemon's answer, after a line about the daemon itself; this machine's when it has none. */
async function gather(ctx: Ctx): Promise<HostCheckJson[]> {
  const address = ctx.target.address;
  try {
    const checks = await ctx.client.doctor();
    return [{ Name: 'daemon', Ok: true, Required: true, Detail: `${address} answered; the checks below ran on its host`, Fix: '' }, ...checks];
  } catch (e) {
    let daemon: HostCheckJson;
    const here = `the checks below ran here, in the CLI, as ${whoAmI()}`;
    if (e instanceof DaemonUnreachableError) daemon = { Name: 'daemon', Ok: false, Required: true, Detail: `not reachable at ${address} (${e.reason}); ${here}`, Fix: startCommand(address) };
    else if (e instanceof UnikApiError && e.status === 404)
      daemon = { Name: 'daemon', Ok: false, Required: false, Detail: `${address} answered, but has no /doctor (an older unik); ${here}`, Fix: 'restart the daemon from this unik' };
    else throw e;
    return [daemon, ...(await localChecks())];
  }
}

/** The daemon's own checks, run in this process (loaded only when needed: they pull in the providers). */
async function localChecks(): Promise<HostCheckJson[]> {
  const [{ hostChecks }, { createProviders }, { unikPaths }, { hostCheckJson }] = await Promise.all([
    import('../../core/doctor.js'),
    import('../../providers/index.js'),
    import('../../model/paths.js'),
    import('../../daemon/unik/serialize.js'),
  ]);
  const paths = unikPaths();
  return (await hostChecks({ paths, providers: createProviders(paths, () => {}) })).map(hostCheckJson);
}

function whoAmI(): string {
  const uid = process.getuid?.();
  if (uid === 0) return 'root';
  try {
    return `${userInfo().username} (uid ${uid})`;
  } catch {
    return `uid ${uid}`;
  }
}

/** How to start the daemon the CLI is pointed at. */
function startCommand(address: string): string {
  const unik = which('unik') ? 'unik' : (process.argv[1] ?? 'unik');
  const port = Number(new URL(targetUrl(address)).port) || DEFAULT_PORT;
  const host = hostOf(address);
  const portFlag = port === DEFAULT_PORT ? '' : ` --port ${port}`;
  if (['127.0.0.1', 'localhost', '::1'].includes(host)) return `${unik} daemon${portFlag} &`;
  return `on ${host}: ${unik} daemon --host ADDRESS${portFlag} (beyond loopback it needs TLS and UNIK_API_TOKEN: see the README's Security section)`;
}

const MARK = { ok: '✓', optional: '!', required: '✗' };

/** One line a check: [✓] ok, [!] missing but optional, [✗] required; the fix under each problem; a summary. */
export function renderChecks(checks: HostCheckJson[]): string {
  const width = Math.max(...checks.map((c) => c.Name.length));
  const lines: string[] = [];
  for (const c of checks) {
    const mark = c.Ok ? MARK.ok : c.Required ? MARK.required : MARK.optional;
    lines.push(`[${mark}] ${c.Name.padEnd(width)}  ${c.Detail}`);
    if (!c.Ok && c.Fix) lines.push(`    ${' '.repeat(width)}  fix: ${c.Fix}`);
  }
  const bad = checks.filter((c) => !c.Ok);
  const required = bad.filter((c) => c.Required).length;
  lines.push('');
  if (bad.length === 0) lines.push('no problems found');
  else
    lines.push(
      `${bad.length} problem${bad.length === 1 ? '' : 's'}` +
        (required ? `, ${required} of them blocking (${MARK.required}): unik cannot build or run until ${required === 1 ? 'it is' : 'they are'} fixed` : ` (${MARK.optional}): unik works, without what they name`),
    );
  // every package at once, when several checks want some
  const apt = bad.map((c) => /^apt-get install ([a-z0-9.+ -]+)$/.exec(c.Fix)?.[1]).filter((p): p is string => p !== undefined);
  if (apt.length > 1) lines.push(`every missing package at once: apt-get install ${[...new Set(apt.flatMap((p) => p.split(' ')))].join(' ')} (scripts/setup.sh installs them all)`);
  return lines.join('\n') + '\n';
}
