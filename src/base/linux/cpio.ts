import { open, type FileHandle } from 'node:fs/promises';

// A writer for the "newc" cpio format the kernel unpacks as its initramfs. Hand-written
// because it is ~80 lines, needs no root (device nodes and owners are just header fields)
// and is reproducible (fixed owners and mtimes), which neither GNU cpio nor the npm
// packages give without a staging tree owned by root.

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** An entry's owner in the archive; absent: root. */
export interface CpioOwner {
  uid?: number;
  gid?: number;
}

export class CpioWriter {
  private ino = 1;
  private offset = 0;

  private constructor(private readonly fh: FileHandle) {}

  static async create(path: string): Promise<CpioWriter> {
    return new CpioWriter(await open(path, 'w', 0o644));
  }

  dir(path: string, mode = 0o755, owner?: CpioOwner): Promise<void> {
    return this.entry(path, S_IFDIR | mode, 2, 0, 0, Buffer.alloc(0), undefined, owner);
  }

  file(path: string, data: Buffer, mode = 0o644, owner?: CpioOwner): Promise<void> {
    return this.entry(path, S_IFREG | mode, 1, 0, 0, data, undefined, owner);
  }

  /** Copies a host file in (a path, or a file the caller opened and checked), streaming it in chunks. */
  async fileFrom(path: string, source: string | FileHandle, mode: number, owner?: CpioOwner): Promise<void> {
    const src = typeof source === 'string' ? await open(source, 'r') : source;
    try {
      const { size } = await src.stat();
      await this.header(path, S_IFREG | mode, 1, size, 0, 0, undefined, owner);
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let done = 0; done < size; ) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - done), done);
        if (bytesRead === 0) throw new Error(`${typeof source === 'string' ? source : path} shrank while it was being copied`);
        await this.write(buf.subarray(0, bytesRead));
        done += bytesRead;
      }
      await this.pad();
    } finally {
      if (typeof source === 'string') await src.close();
    }
  }

  symlink(path: string, target: string, owner?: CpioOwner): Promise<void> {
    return this.entry(path, S_IFLNK | 0o777, 1, 0, 0, Buffer.from(target), undefined, owner);
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): Promise<void> {
    return this.entry(path, S_IFCHR | mode, 1, major, minor, Buffer.alloc(0));
  }

  /** Writes the trailer and closes; returns the archive's size in bytes. */
  async finish(): Promise<number> {
    await this.entry('TRAILER!!!', 0, 1, 0, 0, Buffer.alloc(0), 0);
    await this.fh.close();
    return this.offset;
  }

  private async entry(path: string, mode: number, nlink: number, rmaj: number, rmin: number, data: Buffer, ino?: number, owner?: CpioOwner): Promise<void> {
    await this.header(path, mode, nlink, data.length, rmaj, rmin, ino, owner);
    await this.write(data);
    await this.pad();
  }

  private async header(path: string, mode: number, nlink: number, size: number, rmaj: number, rmin: number, ino = this.ino++, owner?: CpioOwner): Promise<void> {
    const name = path.replace(/^\/+/, '');
    const nameBytes = Buffer.from(name + '\0');
    const fields = [ino, mode, owner?.uid ?? 0, owner?.gid ?? 0, nlink, 0, size, 0, 0, rmaj, rmin, nameBytes.length, 0];
    const hdr = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
    await this.write(Buffer.concat([Buffer.from(hdr, 'ascii'), nameBytes]));
    await this.pad();
  }

  private async write(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    await this.fh.write(b, 0, b.length, this.offset);
    this.offset += b.length;
  }

  private async pad(): Promise<void> {
    const rem = this.offset % 4;
    if (rem) await this.write(Buffer.alloc(4 - rem));
  }
}
