// What the guest says on its control line is the guest's to say (a hostile app may write there):
// it is read for two facts only, and never held beyond one short partial line.

/** The init's lines on the control channel (ready, exit N), kept to one bounded partial line. */
export class GuestLines {
  ready = false;
  exitCode: number | null = null;
  private partial = '';

  feed(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop()!.slice(0, 256);
    for (const line of lines) {
      if (line.startsWith('unik:ready')) this.ready = true;
      const m = /^unik:exit (\d{1,3})\b/.exec(line);
      // an exit status is 0-255; anything else is not the init speaking
      if (m && this.exitCode === null && Number(m[1]) <= 255) this.exitCode = Number(m[1]);
    }
  }
}
