// The files a domain boots from (kernel, per-start initrd) go to the libvirt host through a
// storage pool of its own, uploaded over the connection: the same steps for this machine and
// for a remote one (qemu+ssh://). Its console and control logs are written there too.

import { stat } from 'node:fs/promises';
import type { Virsh } from './virsh.js';

export const POOL = 'unik';
/** where the pool lives when unik defines it */
export const DEFAULT_POOL_PATH = '/var/lib/libvirt/images/unik';

/** Makes the pool if it is missing and starts it; resolves its folder on the libvirt host. */
export async function ensurePool(virsh: Virsh): Promise<string> {
  if ((await virsh.maybe(['pool-info', POOL])) === undefined) {
    await virsh.run(['pool-define-as', POOL, 'dir', '--target', DEFAULT_POOL_PATH]).catch(async (e: Error) => {
      // another daemon defined it meanwhile
      if ((await virsh.maybe(['pool-info', POOL])) === undefined) throw e;
    });
    await virsh.run(['pool-build', POOL]).catch(() => undefined);
    await virsh.run(['pool-autostart', POOL]).catch(() => undefined);
  }
  const info = await virsh.run(['pool-info', POOL]);
  if (!/State:\s+running/.test(info)) await virsh.run(['pool-start', POOL]).catch(async (e: Error) => {
    if (!/State:\s+running/.test(await virsh.run(['pool-info', POOL]))) throw e;
  });
  const xmlText = await virsh.run(['pool-dumpxml', POOL]);
  const path = /<target>\s*<path>([^<]+)<\/path>/.exec(xmlText)?.[1];
  if (!path) throw new Error(`the libvirt pool ${POOL} has no folder`);
  return path;
}

/** Uploads a local file as the volume NAME (replacing one of that name); resolves its path there. */
export async function uploadVolume(virsh: Virsh, name: string, file: string): Promise<string> {
  const size = (await stat(file)).size;
  await virsh.maybe(['vol-delete', '--pool', POOL, name]);
  await virsh.run(['vol-create-as', POOL, name, String(Math.max(size, 1)), '--format', 'raw']);
  await virsh.run(['vol-upload', '--pool', POOL, name, file], { deadlineMs: 300_000 });
  return (await virsh.run(['vol-path', '--pool', POOL, name])).trim();
}

/** Deletes every volume whose name starts with PREFIX (an instance's files and rotated logs). */
export async function deleteVolumes(virsh: Virsh, prefix: string): Promise<void> {
  await virsh.run(['pool-refresh', POOL]).catch(() => undefined);
  const names = (await virsh.run(['vol-list', '--pool', POOL])).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '');
  for (const n of names) if (n && n.startsWith(prefix)) await virsh.maybe(['vol-delete', '--pool', POOL, n]);
}
