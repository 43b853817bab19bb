// What happened, as one stream: the services emit here at the points where state really
// changes (an instance created, started, ready, died, removed; an image built, pulled, pushed,
// deleted; a volume made or deleted), and the API's event streams and the metrics listen. The
// last events are kept in a bounded ring so that a client asking `since` gets them.

export type EventType = 'instance' | 'image' | 'volume';

/** What each kind of object reports. Docker's names where Docker has the same thing. */
export const EVENT_ACTIONS = {
  instance: ['create', 'start', 'ready', 'kill', 'die', 'stop', 'destroy'],
  image: ['build', 'pull', 'push', 'delete'],
  volume: ['create', 'destroy'],
} as const satisfies Record<EventType, readonly string[]>;

export type EventAction<T extends EventType = EventType> = (typeof EVENT_ACTIONS)[T][number];

export interface UnikEvent {
  /** nanoseconds since the epoch (the wall clock's ms; events within one ms 1 ns apart): strictly increasing */
  timeNano: bigint;
  type: EventType;
  action: EventAction;
  /** the object's full id */
  id: string;
  /** always holds `name`; the rest depends on the action (e.g. `exitCode` on die) */
  attributes: Record<string, string>;
}

export type EventInput = { [T in EventType]: { type: T; action: EventAction<T>; id: string; attributes: Record<string, string> & { name: string } } }[EventType];

export type EventListener = (e: UnikEvent) => void;

/** How many events `since` can reach back over (Docker keeps 256). */
export const EVENT_HISTORY = 1024;

/** A fixed-size ring: push drops the oldest once full. */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  get size(): number {
    return this.count;
  }

  /** oldest first */
  toArray(): T[] {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    return Array.from({ length: this.count }, (_, i) => this.items[(start + i) % this.capacity] as T);
  }
}

/** ns since the epoch, from the wall clock (as clients' since and until are): ms, the rest 0 */
const wallClock = () => BigInt(Date.now()) * 1_000_000n;

export class EventBus {
  /** API clients streaming events: come and go, and are counted */
  private readonly listeners = new Set<EventListener>();
  /** in-process observers (the metrics): for the bus's lifetime */
  private readonly observers: EventListener[] = [];
  private readonly history: RingBuffer<UnikEvent>;
  private last = 0n;

  constructor(
    historySize = EVENT_HISTORY,
    private readonly clock: () => bigint = wallClock,
  ) {
    this.history = new RingBuffer(historySize);
  }

  /** Now, on the clock events are stamped with (ns since the epoch). */
  now(): bigint {
    return this.clock();
  }

  /** Records an event and hands it to every listener; a listener that throws is not the emitter's problem. */
  emit(input: EventInput): UnikEvent {
    let t = this.clock();
    if (t <= this.last) t = this.last + 1n;
    this.last = t;
    const e: UnikEvent = { timeNano: t, type: input.type, action: input.action, id: input.id, attributes: { ...input.attributes } };
    this.history.push(e);
    for (const l of [...this.observers, ...this.listeners]) {
      try {
        l(e);
      } catch {
        /* a listener's failure stays its own */
      }
    }
    return e;
  }

  /** Adds a client's listener; the returned function removes it (the client went away). */
  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** the clients listening now (Docker's NEventsListener) */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Adds an in-process observer for the bus's lifetime (not counted as a listener). */
  observe(fn: EventListener): void {
    this.observers.push(fn);
  }

  /** The kept events with since <= timeNano <= until (either bound optional), oldest first. */
  recent(since?: bigint, until?: bigint): UnikEvent[] {
    return this.history.toArray().filter((e) => (since === undefined || e.timeNano >= since) && (until === undefined || e.timeNano <= until));
  }
}

/** Seconds with 3 decimals, as event attributes carry durations. */
export function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}
