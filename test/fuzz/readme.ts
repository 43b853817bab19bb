// Writes the fuzz figures into the README between its fuzz markers, so no figure there is typed
// by hand. Only a full, clean run is written.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { FuzzResult } from './api.fuzz.js';

const BEGIN = '<!-- fuzz:begin -->';
const END = '<!-- fuzz:end -->';

export function fuzzReadmeBlock(r: FuzzResult, date: string, resultsFile: string): string {
  const rows = [
    ['requests', `${r.cases} (seed ${r.seed}; ${r.transports.inject} in-process, ${r.transports.socket} over real sockets)`],
    ['routes hit', `${r.routes.hit} of ${r.routes.modelled} modelled, both APIs`],
    ['crashes / hangs / 5xx to client errors', `${r.crashes} / ${r.hangs} / ${r.fiveXx}`],
    ['4xx without a JSON reason / files leaked / connections held', `${r.unclear} / ${r.leaks} / ${r.heldConnections}`],
    ['hostile Origin/Host requests', `${r.hostile.sent} sent, ${r.hostile.refused403} refused with 403, ${r.hostile.accepted} accepted`],
    ['latency', `p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms; wall ${(r.wallMs / 1000).toFixed(1)} s`],
  ];
  return [BEGIN, `Latest \`npm run fuzz\` (${date.slice(0, 10)}, \`${resultsFile}\`):`, '', '| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`), END].join('\n');
}

export function writeFuzzReadme(readme: string, block: string): boolean {
  if (!existsSync(readme)) return false;
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return false;
  writeFileSync(readme, text.slice(0, a) + block + text.slice(b + END.length));
  return true;
}
