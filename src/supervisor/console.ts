import { closeSync, openSync, renameSync, writeSync, fstatSync } from 'node:fs';

/**
 * The guest console, copied from QEMU's stdout to a file that never grows past maxBytes: when it
 * would, it becomes FILE.1 (the one before is dropped) and a new FILE starts. Readers that follow
 * the file notice it shrank and start again from its beginning.
 */
export class RotatingConsole {
  private fd: number;
  private size: number;

  constructor(
    private readonly file: string,
    private readonly maxBytes: number,
  ) {
    this.fd = openSync(file, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  /** Never throws: a console that cannot be written (a full disk) loses output, not the VM. */
  write(chunk: Buffer): void {
    if (this.fd < 0) return;
    try {
      if (this.size > 0 && this.size + chunk.length > this.maxBytes) this.rotate();
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
      this.size += chunk.length;
    } catch {
      this.dropped += chunk.length;
    }
  }

  /** bytes lost to write errors */
  dropped = 0;

  private rotate(): void {
    renameSync(this.file, `${this.file}.1`);
    const fd = openSync(this.file, 'a', 0o640);
    closeSync(this.fd);
    this.fd = fd;
    this.size = 0;
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
    this.fd = -1;
  }
}
