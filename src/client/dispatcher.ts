// A fetch dispatcher without undici's 300 s header/body timeouts, for calls that legitimately
// stay quiet for minutes: a synchronous build (no headers until the kernel is compiled) and
// `logs --follow` on a silent instance. Node's fetch exposes no Agent class, so we borrow the
// constructor of its global dispatcher; if that ever fails we fall back to the defaults.
/** An undici Dispatcher; opaque here (the DOM fetch types don't know the `dispatcher` option). */
export type Dispatcher = object;
type AgentCtor = new (opts: { headersTimeout: number; bodyTimeout: number }) => Dispatcher;

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');
let patient: Promise<Dispatcher | undefined> | undefined;

async function create(): Promise<Dispatcher | undefined> {
  try {
    // Any fetch, even of a data: URL, makes Node install its global Agent.
    await fetch('data:,');
    const agent = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
    const ctor = (agent as { constructor?: unknown } | undefined)?.constructor;
    if (typeof ctor !== 'function' || ctor.name !== 'Agent') return undefined;
    return new (ctor as AgentCtor)({ headersTimeout: 0, bodyTimeout: 0 });
  } catch {
    return undefined;
  }
}

/** The shared no-timeout dispatcher, or undefined to use fetch's default. */
export function patientDispatcher(): Promise<Dispatcher | undefined> {
  patient ??= create();
  return patient;
}
