// Writes the crash figures into the README between its crash markers, so no figure there is
// typed by hand. Without the markers, a "Reliability" section holding them is added after the
// README's last section (before a trailing licence section, if there is one).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { COUNTERS, type Counter } from './invariants.js';
import { OPS, OP_DESCRIPTIONS, type CrashResult } from './run.js';

export const BEGIN = '<!-- crash:begin -->';
export const END = '<!-- crash:end -->';

const COUNTER_TITLES: Record<Counter, string> = {
  lostRecords: 'lost records',
  phantomRecords: 'phantom records',
  leakedQemu: 'leaked QEMU',
  leakedPorts: 'leaked ports',
  orphanFiles: 'orphan files',
  wrongState: 'wrong state',
  daemonFailedToRestart: 'daemon did not restart',
  failedTrials: 'failed trials',
};

const SECTION_INTRO = [
  '## Reliability',
  '',
  '`npm run crash` checks that nothing is lost when the daemon dies. Each trial sends one',
  'operation to a real daemon through its HTTP API (build, run with and without a published port,',
  'stop, start, `rm -f`, pull from a local `docker-registry`, volume create), SIGKILLs the daemon',
  'after a random delay of up to 1.2 times that operation\'s typical duration, starts it again on',
  'the same home and port, and compares what the API shows with what is really there: an',
  'acknowledged operation whose effect is gone (lost), a record whose files, image or removal are',
  'wrong (phantom), QEMU processes and host ports nobody accounts for, files left under the home,',
  'and a shown state that the VM contradicts. Supervisor trials SIGKILL the supervisor of a running',
  'VM instead: its QEMU must go and the instance must show as stopped or error. Every counter',
  'should be 0; `test/crash/` is the harness, `npm test` runs a few trials of each kind.',
  '',
].join('\n');

export function crashReadmeBlock(r: CrashResult, date: string, resultsFile: string): string {
  const minutes = (r.totalMs / 60_000).toFixed(1);
  const head = `Latest \`npm run crash\` (${date.slice(0, 10)}, \`${resultsFile}\`): ${r.trialsRun} trials (seed ${r.seed}) in ${minutes} min, on ${r.machine.cores} cores, ${r.machine.qemu}${r.machine.accel ? ` (${r.machine.accel.toUpperCase()})` : ''}.`;
  const typical = `Typical durations measured at start-up (ms): ${Object.entries(r.typicalMs)
    .map(([op, ms]) => `${op} ${ms}`)
    .join(', ')}.`;
  const cols = ['operation', 'trials', 'acked before the kill', ...COUNTERS.map((c) => COUNTER_TITLES[c])];
  // a supervisor trial kills no daemon: nothing to acknowledge
  const rows = OPS.map((o) => [OP_DESCRIPTIONS[o], r.perOp[o].trials, o === 'supervisor' ? '–' : r.perOp[o].acked, ...COUNTERS.map((c) => r.perOp[o][c])]);
  rows.push(['**total**', r.trialsRun, OPS.reduce((s, o) => s + r.perOp[o].acked, 0), ...COUNTERS.map((c) => r.counters[c])]);
  const table = [`| ${cols.join(' | ')} |`, `|${cols.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
  return [BEGIN, head, typical, '', ...table, END].join('\n');
}

/** Puts the block in place of the old one, or in a new Reliability section. */
export function withCrashBlock(text: string, block: string): string {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) return text.slice(0, a) + block + text.slice(b + END.length);
  const section = `${SECTION_INTRO}\n${block}\n`;
  // before a trailing licence section, else at the end
  const headings = [...text.matchAll(/^## .*$/gm)];
  const last = headings[headings.length - 1];
  if (last && /^## licen[cs]e\b/i.test(last[0])) return `${text.slice(0, last.index)}${section}\n${text.slice(last.index)}`;
  return `${text.replace(/\n*$/, '\n')}\n${section}`;
}

export function writeCrashReadme(readme: string, block: string): boolean {
  if (!existsSync(readme)) return false;
  writeFileSync(readme, withCrashBlock(readFileSync(readme, 'utf8'), block));
  return true;
}
