import type { FastifyReply } from 'fastify';
import type { EventBus, UnikEvent } from '../../core/events.js';
import { invalid } from '../../model/errors.js';

// What both dialects' GET /events share: Docker's `since`/`until`/`filters` query and its
// streaming rules. With since or until, the kept events in that window come first; with an
// until in the past the answer ends there, with one in the future it ends then; without until
// it streams until the client goes. A client that goes frees its listener at once.

/** Docker's since/until: unix seconds with an optional fraction (the CLI sends 9 digits); in ns. */
export function parseEventTime(v: string | undefined, what: 'since' | 'until'): bigint | undefined {
  if (v === undefined || v === '') return undefined;
  const m = /^(\d{1,12})(?:\.(\d{1,9})\d*)?$/.exec(v);
  if (!m) throw invalid('BAD_EVENT_TIME', `bad ${what} ${JSON.stringify(v.slice(0, 64))}`, 'give unix seconds, e.g. 1700000000 or 1700000000.5');
  return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** key → accepted values; an event must match every key (Docker's semantics). */
export type EventFilters = Map<string, Set<string>>;

/**
 * Docker's `filters` JSON, in both of its forms: {"type":["container"]} and the CLI's
 * {"type":{"container":true}}. Keys other than `accepted` are refused.
 */
export function parseEventFilters(text: string | undefined, accepted: readonly string[]): EventFilters {
  const out: EventFilters = new Map();
  if (text === undefined || text === '') return out;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid('BAD_FILTERS', 'filters is not JSON', 'e.g. {"type":["container"],"event":["die"]}');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('BAD_FILTERS', 'filters must be a JSON object of lists', 'e.g. {"type":["container"],"event":["die"]}');
  for (const [key, v] of Object.entries(raw)) {
    if (!accepted.includes(key)) throw invalid('BAD_FILTERS', `invalid filter '${key.slice(0, 64)}'`, `filters here: ${accepted.join(', ')}`);
    const values = Array.isArray(v) ? v : typeof v === 'object' && v !== null ? Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] === true) : undefined;
    if (!values || !values.every((x): x is string => typeof x === 'string')) throw invalid('BAD_FILTERS', `filter '${key}' must be a list of strings`);
    if (values.length) out.set(key, new Set(values));
  }
  return out;
}

/** What a filter looks at, in the dialect's own terms (a Docker container is a unik instance). */
export interface FilterSubject {
  type: string;
  action: string;
  id: string;
  attributes: Record<string, string>;
}

const stripTag = (ref: string) => ref.replace(/:[^:/]*$/, '');

/**
 * Docker's daemon/events/filter.go: type, event and scope are exact; label is a list of k or k=v
 * that must all hold; image matches the image's id or name, tag or none; every other key
 * (container, instance, volume, …) is a prefix of the object's id or name.
 */
export function matchesFilters(f: EventFilters, s: FilterSubject): boolean {
  for (const [key, values] of f) {
    let ok: boolean;
    if (key === 'type') ok = values.has(s.type);
    else if (key === 'event') ok = values.has(s.action);
    else if (key === 'scope') ok = values.has('local');
    else if (key === 'label')
      ok = [...values].every((l) => {
        const at = l.indexOf('=');
        const k = at < 0 ? l : l.slice(0, at);
        return Object.hasOwn(s.attributes, k) && (at < 0 || s.attributes[k] === l.slice(at + 1));
      });
    else if (key === 'image') {
      const name = s.attributes[s.type === 'image' ? 'name' : 'image'] ?? '';
      ok = [s.id, name, stripTag(s.id), stripTag(name)].some((x) => x !== '' && values.has(x));
    } else {
      const name = s.attributes.name ?? '';
      ok = [...values].some((v) => s.id.startsWith(v) || (name !== '' && name.startsWith(v)));
    }
    if (!ok) return false;
  }
  return true;
}

export interface EventQuery {
  since?: bigint;
  until?: bigint;
  filters: EventFilters;
}

/** since, until and filters from a query, checked before any byte is sent. */
export function eventQuery(q: { since?: string; until?: string; filters?: string }, accepted: readonly string[]): EventQuery {
  const since = parseEventTime(q.since, 'since');
  const until = parseEventTime(q.until, 'until');
  if (since !== undefined && until !== undefined && until < since) throw invalid('BAD_EVENT_TIME', `since (${q.since}) is after until (${q.until})`);
  return { ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}), filters: parseEventFilters(q.filters, accepted) };
}

/** a client that reads slower than this much is behind is dropped, not buffered for */
const MAX_BEHIND_BYTES = 4 * 1024 * 1024;
/** setTimeout's longest delay */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Streams events as JSON lines: `subject` says what the filters see of an event (or undefined:
 * not shown in this dialect), `line` is its JSON text. Resolves once the stream has ended.
 */
export function streamEvents(bus: EventBus, reply: FastifyReply, q: EventQuery, contentType: string, subject: (e: UnikEvent) => FilterSubject | undefined, line: (e: UnikEvent) => string): Promise<void> {
  reply.hijack();
  // a body nobody reads (a GET may carry one) stops the socket being read, and then a client
  // that goes is never noticed: drop it
  reply.request.raw.resume();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache' });
  // the docker CLI waits for the headers before it shows anything
  res.flushHeaders();
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    const done = () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
      resolve();
    };
    res.once('close', done);
    const end = () => {
      done();
      res.end();
    };
    const write = (e: UnikEvent) => {
      if (res.destroyed) return;
      const s = subject(e);
      if (!s || !matchesFilters(q.filters, s)) return;
      res.write(line(e) + '\n');
      if (res.writableLength > MAX_BEHIND_BYTES) res.destroy();
    };
    // the kept events, then the live ones: one synchronous step, so none is missed or repeated
    if (q.since !== undefined || q.until !== undefined) for (const e of bus.recent(q.since, q.until)) write(e);
    if (q.until !== undefined && q.until <= bus.now()) return end();
    unsubscribe = bus.subscribe((e) => {
      if (q.until !== undefined && e.timeNano > q.until) return end();
      write(e);
    });
    if (q.until !== undefined) {
      const arm = () => {
        const left = Number((q.until! - bus.now()) / 1_000_000n);
        if (left <= 0) return end();
        timer = setTimeout(arm, Math.min(left + 1, MAX_TIMER_MS));
      };
      arm();
    }
  });
}

/** JSON with a nanosecond time as a bare integer (too large for a JS number), appended last. */
export function jsonWithNano(obj: object, key: string, ns: bigint): string {
  const text = JSON.stringify(obj);
  return `${text.slice(0, -1)}${text.length > 2 ? ',' : ''}${JSON.stringify(key)}:${ns.toString()}}`;
}

/** RFC 3339 with nanoseconds. */
export function isoNano(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString();
  return `${iso.slice(0, 20)}${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}
