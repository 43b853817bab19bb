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

  write(chunk: Buffer): void {
    if (this.size > 0 && this.size + chunk.length > this.maxBytes) this.rotate();
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
    this.size += chunk.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    renameSync(this.file, `${this.file}.1`);
    this.fd = openSync(this.file, 'a', 0o640);
    this.size = 0;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
  }
}
