import { appendFileSync, writeSync } from 'node:fs';

// The runtime log, as runc writes it: with --log, lines go to that file only (containerd's shim
// reads the last "error" line of <bundle>/log.json to explain a failure); without it, to stderr.
// Never through process.stderr: touching Node's stdio streams makes the shim's pipes
// non-blocking, and those pipes are the container's stdio that QEMU inherits.

export type Level = 'debug' | 'info' | 'warning' | 'error';

export class RuntimeLog {
  constructor(
    private readonly file: string | undefined,
    private readonly format: 'text' | 'json',
    private readonly debugOn = false,
  ) {}

  line(level: Level, msg: string): string {
    const time = new Date().toISOString();
    if (this.format === 'json') return JSON.stringify({ level, msg, time }) + '\n';
    return `time=${JSON.stringify(time)} level=${level} msg=${JSON.stringify(msg)}\n`;
  }

  write(level: Level, msg: string): void {
    if (level === 'debug' && !this.debugOn) return;
    // without --log, stderr carries errors and warnings only: for create it is the container's
    if (!this.file && level === 'info' && !this.debugOn) return;
    const text = this.line(level, msg);
    try {
      if (this.file) appendFileSync(this.file, text);
      else writeSync(2, text);
    } catch {
      /* a log that cannot be written must not hide the real error: the exit status still says it */
    }
  }

  error(msg: string): void {
    this.write('error', msg);
  }
  warn(msg: string): void {
    this.write('warning', msg);
  }
  info(msg: string): void {
    this.write('info', msg);
  }
  debug(msg: string): void {
    this.write('debug', msg);
  }
}
