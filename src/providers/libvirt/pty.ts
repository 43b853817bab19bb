// The control line of a libvirt domain is a pseudo-terminal on the libvirt host (its output is
// also logged by virtlogd, where the daemon reads the guest's events). A command goes in by
// opening the pty and writing it. QEMU notices a pty that has been opened only at its next
// 1-second check, and reads what waits in it then, so the pty stays open until the guest
// answers or that check has surely passed.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** QEMU's pty reconnect check runs every second */
const PTY_NOTICE_MS = 1500;

/** Writes one line to the pty; resolves once `done()` holds or QEMU has surely read it. */
export async function sendLine(pty: string, line: string, done: () => boolean = () => false, holdMs = PTY_NOTICE_MS): Promise<void> {
  // only a pty libvirt named for this domain: never a path that leads elsewhere
  if (!/^\/dev\/pts\/\d{1,6}$/.test(pty)) throw new Error(`the domain's control line is not a pty (${pty})`);
  const fh = await open(pty, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    await fh.write(line);
    const until = Date.now() + holdMs;
    while (Date.now() < until && !done()) await sleep(50);
  } finally {
    await fh.close();
  }
}
