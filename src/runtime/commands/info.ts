// state, ps, features, version, and the verbs a VM cannot honour.

import { readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EXIT, RuntimeError, unsupported, type Ctx } from '../context.js';
import { delegate } from '../delegate.js';
import { ours } from './lifecycle.js';
import { isUnikRootfs } from '../image.js';
import type { OciSpec } from '../spec.js';

export const VERSION = '0.1.0';
export const SPEC_VERSION = '1.0.2';

function out(text: string): void {
  writeSync(1, text);
}

export async function state(ctx: Ctx): Promise<number> {
  const c = ours(ctx);
  if (!c) return delegate(ctx.argv);
  const { st, s } = c;
  const status = st.status(s);
  out(
    JSON.stringify(
      {
        ociVersion: SPEC_VERSION,
        id: s.id,
        pid: status === 'stopped' ? 0 : s.pid,
        status,
        bundle: s.bundle,
        rootfs: s.rootfs,
        created: s.created,
        owner: '',
        annotations: s.annotations,
      },
      null,
      2,
    ) + '\n',
  );
  return 0;
}

/** The shim calls `ps --format json ID` (e.g. when containerd restarts): the pids, here the monitor's. */
export async function ps(ctx: Ctx): Promise<number> {
  const c = ours(ctx);
  if (!c) return delegate(ctx.argv);
  const { st, s } = c;
  const pids = st.status(s) === 'stopped' ? [] : [s.pid];
  const format = ctx.args.flags.format ?? 'table';
  if (format === 'json') out(JSON.stringify(pids) + '\n');
  else if (format === 'table') out(['PID', ...pids.map(String)].join('\n') + '\n');
  else throw new RuntimeError(`invalid format option: ${String(format)}`, EXIT.usage);
  return 0;
}

export async function features(): Promise<number> {
  out(
    JSON.stringify(
      {
        ociVersionMin: '1.0.0',
        ociVersionMax: SPEC_VERSION,
        hooks: [],
        mountOptions: [],
        linux: { namespaces: ['network'], capabilities: [], cgroup: { v1: false, v2: false, systemd: false, systemdUser: false } },
        annotations: {
          'sh.unik.runtime': 'unik-runc',
          'sh.unik.runtime.delegate': 'containers that are not unikernels are run by runc, whose features apply to them',
        },
      },
      null,
      2,
    ) + '\n',
  );
  return 0;
}

export async function version(): Promise<number> {
  // three lines, as go-runc's parseVersion expects
  out(`unik-runc version ${VERSION}\ncommit: unik\nspec: ${SPEC_VERSION}\n`);
  return 0;
}

/** exec, pause, resume, update, events, checkpoint, restore: runc's for runc's containers. */
export async function refuse(ctx: Ctx): Promise<number> {
  const c = ctx.args.operands[0] ? ours(ctx) : undefined;
  if (!c && !(ctx.args.verb === 'run' && isUnikBundle(String(ctx.args.flags.bundle ?? process.cwd())))) return delegate(ctx.argv);
  const why: Record<string, string> = {
    exec: 'the VM runs one app and has no shell or agent to start another process in (kubectl exec, ctr task exec)',
    pause: 'the VM cannot be frozen through the container interface yet',
    resume: 'the VM cannot be frozen through the container interface yet',
    update: 'a running VM\'s memory and CPUs cannot be changed; recreate the container',
    events: 'there are no cgroup statistics for a VM yet',
    checkpoint: 'VM snapshots are not wired to the container interface',
    restore: 'VM snapshots are not wired to the container interface',
    run: 'run it with create and start (as containerd does)',
  };
  throw unsupported(ctx.args.verb, why[ctx.args.verb]);
}

function isUnikBundle(bundle: string): boolean {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as OciSpec;
    return isUnikRootfs(resolve(bundle, spec.root?.path ?? 'rootfs'));
  } catch {
    return false;
  }
}
