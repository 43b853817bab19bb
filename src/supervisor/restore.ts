import type { Qmp } from '../providers/qemu/qmp.js';
import { waitStatusLeaves } from '../providers/qemu/qmp.js';

/** The fd on which a QEMU that saves or loads a snapshot's device state inherits it. */
export const STATE_FD = 3;

/**
 * Loads a snapshot's device state into a QEMU started with `-incoming defer`, the snapshot's RAM
 * file and the state file as fd STATE_FD; resolves with the VM's status once loaded ("paused":
 * templates are saved stopped). The one restore sequence of every VM (see supervise.ts).
 */
export async function loadSnapshot(qmp: Qmp): Promise<string> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
  await qmp.execute('migrate-incoming', { uri: `fd:${STATE_FD}` });
  const status = await waitStatusLeaves(qmp, 'inmigrate', 30_000);
  if (status !== 'paused' && status !== 'running') throw new Error(`the restored VM is "${status}"`);
  return status;
}
