import { createServer } from 'node:net';
import { createReadStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/daemon/app.js';
import { createCore, type Core } from '../../src/core/core.js';
import { Fixtures, makeSandbox, type Sandbox } from './fixtures.js';
import { judge, type Answer } from './judge.js';
import { rawRequest } from './raw-http.js';
import { requestArbitrary, ROUTE_COUNT, type FuzzRequest } from './requests.js';

// Property-based requests against a real daemon app (real core, temp UNIK_HOME): most through
// app.inject for speed, a fifth (and every raw path, long poll and upgrade) over a real socket.
// Properties: no crash, an answer within the deadline, no 5xx to a client's mistake, a JSON
// reason with every 4xx, and nothing read or written outside the home.

export interface FuzzOptions {
  cases?: number;
  seed?: number;
  /** a request with no answer by then is a hang */
  deadlineMs?: number;
  /** how long a long poll's body is read before hanging up */
  pollWindowMs?: number;
  /** progress lines */
  log?: (line: string) => void;
}

export interface FuzzFailure {
  kind: 'crash' | 'hang' | '5xx' | 'unclear' | 'leak' | 'dropped' | 'held';
  route: string;
  method: string;
  target: string;
  headers: [string, string][];
  socket?: boolean;
  body?: string;
  replay?: { target: string; bodyBase64?: string };
  detail: string;
}

export interface FuzzResult {
  seed: number;
  cases: number;
  crashes: number;
  hangs: number;
  fiveXx: number;
  unclear: number;
  leaks: number;
  dropped: number;
  /** connections still open on the daemon's side after every client hung up */
  heldConnections: number;
  transports: { inject: number; socket: number };
  /** answers that are right although not 2xx/4xx: why each is allowed is in judge.ts */
  allowed: { damagedImage: number; upstream: number; unsupported: number; parser: number; framework: number };
  hostile: { sent: number; refused403: number; accepted: number };
  status: Record<string, number>;
  routes: { modelled: number; hit: number };
  fixturesRestored: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  wallMs: number;
  failures: FuzzFailure[];
}

const MAX_KEPT_FAILURES = 25;

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 100) / 100;
}

async function send(app: FastifyInstance, port: number, req: FuzzRequest, deadlineMs: number, pollWindowMs: number): Promise<Answer> {
  if (req.socket) {
    const r = await rawRequest(port, { method: req.method, target: req.target, headers: req.headers, ...(req.body ? { body: req.body } : {}) }, deadlineMs, pollWindowMs);
    return { status: r.status, headers: r.headers, body: r.body, socket: true };
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of req.headers) headers[k.toLowerCase()] = v;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hang: no answer within ${deadlineMs} ms`)), deadlineMs)));
  try {
    const res = await Promise.race([app.inject({ method: req.method as 'GET', url: req.target, headers, ...(req.body ? { payload: req.body } : {}) }), deadline]);
    return { status: res.statusCode, headers: res.headers, body: res.rawPayload, socket: false };
  } finally {
    clearTimeout(timer);
  }
}

/** The daemon's open connections once the last client is gone (given up to 10 s to notice). */
async function heldConnections(app: FastifyInstance): Promise<number> {
  const count = () => new Promise<number>((res) => app.server.getConnections((_e, n) => res(n)));
  for (let i = 0; i < 100 && (await count()) > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return count();
}

/** True when the secret's bytes are in any file under dir (volume disks included). */
async function secretUnder(dir: string, secret: string): Promise<string | undefined> {
  const needle = Buffer.from(secret);
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const file = join(e.parentPath, e.name);
    let tail = Buffer.alloc(0);
    for await (const chunk of createReadStream(file)) {
      const b = Buffer.concat([tail, chunk as Buffer]);
      if (b.includes(needle)) return file;
      tail = b.subarray(Math.max(0, b.length - needle.length));
    }
  }
  return undefined;
}

function describe(req: FuzzRequest) {
  const cut = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…(${s.length} chars)` : s);
  return {
    route: req.route,
    method: req.method,
    target: cut(req.target),
    headers: req.headers.map(([k, v]): [string, string] => [k, cut(v)]),
    socket: req.socket,
    ...(req.body ? { body: cut(JSON.stringify(req.body.subarray(0, 400).toString('latin1'))) } : {}),
    // the whole request, to replay it by hand (bodies up to 64 KiB)
    replay: { target: req.target.length > 65536 ? `${req.target.length} chars` : req.target, ...(req.body && req.body.length <= 65536 ? { bodyBase64: req.body.toString('base64') } : {}) },
  };
}

export async function runFuzz(opts: FuzzOptions = {}): Promise<FuzzResult> {
  const cases = opts.cases ?? 10_000;
  const seed = opts.seed ?? Date.now() % 2 ** 31;
  const deadlineMs = opts.deadlineMs ?? 5000;
  const pollWindowMs = opts.pollWindowMs ?? 300;
  const log = opts.log ?? (() => {});

  const box: Sandbox = makeSandbox();
  const fixtures = new Fixtures(box.home);
  fixtures.seedRecords();
  const core: Core = await createCore({ home: box.home });
  const app = await buildApp({ core, version: 'fuzz' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;

  // anything thrown outside a request's promise chain is a crash of the daemon
  const crashes: string[] = [];
  const onCrash = (e: unknown) => crashes.push(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);

  const r: FuzzResult = {
    seed,
    cases: 0,
    crashes: 0,
    hangs: 0,
    fiveXx: 0,
    unclear: 0,
    leaks: 0,
    dropped: 0,
    heldConnections: 0,
    transports: { inject: 0, socket: 0 },
    allowed: { damagedImage: 0, upstream: 0, unsupported: 0, parser: 0, framework: 0 },
    hostile: { sent: 0, refused403: 0, accepted: 0 },
    status: {},
    routes: { modelled: ROUTE_COUNT, hit: 0 },
    fixturesRestored: 0,
    latencyMs: { p50: 0, p90: 0, p99: 0, max: 0 },
    wallMs: 0,
    failures: [],
  };
  const fail = (kind: FuzzFailure['kind'], req: FuzzRequest, detail: string) => {
    // crashes are counted from the process hooks (one may come between requests)
    if (kind !== 'crash') r[kind === 'hang' ? 'hangs' : kind === '5xx' ? 'fiveXx' : kind === 'unclear' ? 'unclear' : kind === 'leak' ? 'leaks' : 'dropped']++;
    if (r.failures.length < MAX_KEPT_FAILURES) r.failures.push({ kind, ...describe(req), detail });
  };
  const latencies: number[] = [];
  const routesHit = new Set<string>();
  const started = Date.now();

  /** One generated request: send it, judge the answer, pin any crash on it. */
  const runCase = async (req: FuzzRequest): Promise<void> => {
    r.fixturesRestored += await fixtures.ensure(core);
    const crashesBefore = crashes.length;
    r.cases++;
    r.transports[req.socket ? 'socket' : 'inject']++;
    if (req.hostile) r.hostile.sent++;
    routesHit.add(req.route);
    const t0 = performance.now();
    let answer: Answer;
    try {
      answer = await send(app, port, req, deadlineMs, pollWindowMs);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg.startsWith('hang')) fail('hang', req, msg);
      // an upgrade to anything but attach is refused by closing the connection (app.ts)
      else if (req.headers.some(([k]) => k === 'Upgrade')) r.dropped++;
      else fail('dropped', req, msg);
      return;
    } finally {
      latencies.push(performance.now() - t0);
      if (r.cases % 1000 === 0) log(`${r.cases} cases, ${r.fiveXx} 5xx, ${r.hangs} hangs, ${crashes.length} crashes`);
    }
    r.status[answer.status] = (r.status[answer.status] ?? 0) + 1;
    const v = judge(req, answer, box.secret);
    if (!v.ok) fail(v.kind, req, v.detail);
    else if (v.note === 'damaged-image') r.allowed.damagedImage++;
    else if (v.note === 'upstream') r.allowed.upstream++;
    else if (v.note === 'unsupported') r.allowed.unsupported++;
    else if (v.note === 'parser') r.allowed.parser++;
    else if (v.note === 'framework') r.allowed.framework++;
    else if (v.note === 'hostile-refused') r.hostile.refused403++;
    else if (v.note === 'hostile-accepted') r.hostile.accepted++;
    if (crashes.length > crashesBefore) fail('crash', req, crashes.slice(crashesBefore).join('\n').slice(0, 2000));
  };

  try {
    const arb = requestArbitrary({ port, closedPort: await closedPort(), outside: box.outside, secretFile: box.secretFile });
    await fc.check(
      fc.asyncProperty(arb, async (req) => {
        // a case stuck outside the request deadlines (restoring fixtures, say) is reported, not waited on blindly
        const watchdog = setTimeout(() => log(`case ${r.cases} still running after ${3 * deadlineMs} ms: ${req.method} ${req.target.slice(0, 200)}`), 3 * deadlineMs);
        await runCase(req).finally(() => clearTimeout(watchdog));
        // the property itself always holds: every verdict is counted, so one bad answer does not end the run
        return true;
      }),
      { numRuns: cases, seed },
    );

    r.crashes = crashes.length;
    // the daemon must still answer on its socket after all of that
    const ping = await rawRequest(port, { method: 'GET', target: '/_ping', headers: [['Host', `127.0.0.1:${port}`]] }, deadlineMs, pollWindowMs).catch((e: Error) => e);
    if (ping instanceof Error || ping.status !== 200) {
      r.crashes++;
      r.failures.push({ kind: 'crash', route: 'GET /_ping (after the run)', method: 'GET', target: '/_ping', headers: [], detail: ping instanceof Error ? ping.message : `status ${ping.status}` });
    }
    // every client has hung up by now: a connection the daemon still holds is one it leaked
    r.heldConnections = await heldConnections(app);
    if (r.heldConnections)
      r.failures.push({ kind: 'held', route: '(after the run)', method: '', target: '', headers: [], detail: `the daemon still holds ${r.heldConnections} connection(s) its clients closed` });
    // nothing written outside the home, and the secret copied nowhere inside it
    const outside = (await readdir(box.outside, { recursive: true })).filter((f) => f !== 'secret.txt');
    if (outside.length) {
      r.leaks++;
      r.failures.push({ kind: 'leak', route: '(after the run)', method: '', target: '', headers: [], detail: `written outside the home: ${outside.join(', ')}` });
    }
    const copied = await secretUnder(box.home, box.secret);
    if (copied) {
      r.leaks++;
      r.failures.push({ kind: 'leak', route: '(after the run)', method: '', target: '', headers: [], detail: `the secret's bytes are in ${copied}` });
    }
  } finally {
    r.wallMs = Date.now() - started;
    latencies.sort((a, b) => a - b);
    r.latencyMs = { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) };
    r.routes.hit = routesHit.size - (routesHit.has('stray') ? 1 : 0);
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    // a daemon that cannot shut down (a request holding it open) is a hang too
    const closed = await Promise.race([app.close().then(() => true), new Promise<false>((res) => setTimeout(() => res(false), deadlineMs).unref())]);
    // (held connections already explain a close that cannot finish)
    if (!closed && !r.heldConnections) {
      r.hangs++;
      r.failures.push({ kind: 'hang', route: '(closing the daemon)', method: '', target: '', headers: [], detail: `app.close() did not finish within ${deadlineMs} ms` });
    }
    core.close();
    fixtures.close();
    await rm(box.root, { recursive: true, force: true });
  }
  return r;
}

export function summaryLine(r: FuzzResult): string {
  return (
    `fuzz: ${r.cases} cases (seed ${r.seed}), ${r.crashes} crashes, ${r.hangs} hangs, ${r.fiveXx} 5xx, ${r.unclear} unclear 4xx, ${r.leaks} leaks, ${r.heldConnections} held connections; ` +
    `${(r.wallMs / 1000).toFixed(1)} s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms; ` +
    `${r.transports.inject} inject + ${r.transports.socket} socket; ${r.routes.hit}/${r.routes.modelled} routes`
  );
}
