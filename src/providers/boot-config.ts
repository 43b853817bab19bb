// What the guest init of an instance is told at boot, whichever provider boots it: the image's
// argv and env with the instance's, its name, its network and volumes, and fresh randomness.

import { randomBytes } from 'node:crypto';
import { USER_NET, type BootConfig } from '../base/linux/contract.js';
import type { ImageRecord, InstanceRecord } from '../model/types.js';
import { signalNumber } from '../model/signals.js';
import { diskSerial } from './qemu/args.js';
import type { Attachments } from './types.js';

export function instanceBootConfig(inst: InstanceRecord, image: ImageRecord, { volumes, nic }: Attachments): BootConfig {
  const m = image.manifest;
  return {
    argv: [...m.argv, ...(inst.spec.args ?? [])],
    env: { ...m.env, ...inst.spec.env },
    cwd: m.cwd,
    hostname: inst.name,
    time: Date.now() / 1000,
    // bridged: the guest takes its own address and MAC (a restored VM would keep its template's otherwise)
    net: nic ? { ifname: 'eth0', ip: nic.ip, gateway: nic.gateway, dns: nic.dns, mac: nic.mac } : USER_NET,
    mounts: volumes.map((v) => ({ serial: diskSerial(v.id), fstype: v.type === 'fat' ? 'vfat' : v.type, mountPoint: v.mountPoint })),
    seed: randomBytes(32),
    ...(m.user ? { user: m.user } : {}),
    ...(m.stopSignal ? { stopSignal: signalNumber(m.stopSignal) } : {}),
    ...(inst.spec.profile ? { profile: true } : {}),
  };
}
