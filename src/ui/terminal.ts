// A guest's console is hostile text: an app may print HTML, terminal escape sequences (colours,
// but also window titles, hyperlinks, cursor moves, "clear screen") and bidirectional overrides
// that make a line read differently than it is. The console shows it as plain text: escape
// sequences are dropped, other control characters shown as their Unicode pictures (␛, ␇, …),
// and the result only ever goes into a text node.

// CSI (ESC [ … final), OSC (ESC ] … BEL or ST), DCS/SOS/PM/APC (ESC P|X|^|_ … ST), and the short
// ESC sequences (ESC, intermediates, final: charset selection, reset, keypad modes)
const ESCAPE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[ -/]*[0-~])/g;
// the same, cut short at the end of a chunk: wait for the rest before deciding
const UNFINISHED = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)$/;
/** longest sequence held back waiting for its end; a longer one is shown, not swallowed */
const MAX_HELD = 512;
// C0 controls other than tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

function picture(c: string): string {
  const n = c.charCodeAt(0);
  if (n < 0x20) return String.fromCharCode(0x2400 + n);
  if (n === 0x7f) return '\u2421';
  return '\ufffd';
}

/** Turns console output, chunk by chunk, into text safe to show. */
export class ConsoleText {
  private held = '';

  /** The text of this chunk that can be shown now (an unfinished escape or CR waits for the next). */
  push(chunk: string): string {
    let s = this.held + chunk;
    this.held = '';
    const cut = UNFINISHED.exec(s) ?? /\r$/.exec(s);
    if (cut && s.length - cut.index <= MAX_HELD) {
      this.held = s.slice(cut.index);
      s = s.slice(0, cut.index);
    }
    return clean(s);
  }

  /** What is still held back, once the output has ended. */
  end(): string {
    const s = this.held;
    this.held = '';
    return clean(s);
  }
}

function clean(s: string): string {
  return s.replace(ESCAPE, '').replace(/\r\n?/g, '\n').replace(CONTROL, picture);
}
