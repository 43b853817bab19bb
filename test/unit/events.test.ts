// The event bus and its ring, Docker's since/until/filters as both dialects read them, and the
// mapping of a unik event to Docker's message: pure functions, no daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, RingBuffer, type UnikEvent } from '../../src/core/events.js';
import { isoNano, jsonWithNano, matchesFilters, parseEventFilters, parseEventTime, type FilterSubject } from '../../src/daemon/http/event-stream.js';
import { DOCKER_EVENT_FILTERS, dockerEvent, dockerEventLine } from '../../src/daemon/docker/events.js';
import { UNIK_EVENT_FILTERS, unikEventLine } from '../../src/daemon/unik/monitoring.js';
import { UnikError } from '../../src/model/errors.js';

const ID = 'ab'.repeat(32);
const invalidArgument = (e: unknown) => e instanceof UnikError && e.kind === 'InvalidArgument';

test('ring buffer: keeps the last N in order, oldest first', () => {
  const r = new RingBuffer<number>(3);
  assert.deepEqual(r.toArray(), []);
  r.push(1);
  r.push(2);
  assert.deepEqual(r.toArray(), [1, 2]);
  for (let i = 3; i <= 10; i++) r.push(i);
  assert.deepEqual(r.toArray(), [8, 9, 10]);
  assert.equal(r.size, 3);
  assert.throws(() => new RingBuffer(0), RangeError);
  assert.throws(() => new RingBuffer(1.5), RangeError);
});

test('bus: strictly increasing times on a clock that stands still; history bounded; recent() bounds inclusive', () => {
  let now = 5_000_000_000n;
  const bus = new EventBus(4, () => now);
  const es = Array.from({ length: 6 }, (_, i) => bus.emit({ type: 'volume', action: 'create', id: `v${i}`, attributes: { name: `v${i}` } }));
  assert.deepEqual(es.map((e) => e.timeNano - 5_000_000_000n), [0n, 1n, 2n, 3n, 4n, 5n]);
  assert.deepEqual(bus.recent().map((e) => e.id), ['v2', 'v3', 'v4', 'v5'], 'only the last 4 kept');
  assert.deepEqual(bus.recent(es[3]!.timeNano, es[4]!.timeNano).map((e) => e.id), ['v3', 'v4']);
  assert.deepEqual(bus.recent(undefined, es[2]!.timeNano).map((e) => e.id), ['v2']);
  now = 1n; // the wall clock stepped back: still after the last
  assert.equal(bus.emit({ type: 'volume', action: 'destroy', id: 'v', attributes: { name: 'v' } }).timeNano, es[5]!.timeNano + 1n);
});

test('bus: listeners get each event once, a thrower harms no one, unsubscribe frees; observers are not counted', () => {
  const bus = new EventBus();
  const seen: string[] = [];
  const observed: string[] = [];
  bus.observe((e) => observed.push(e.action));
  const offBad = bus.subscribe(() => {
    throw new Error('a broken client');
  });
  const off = bus.subscribe((e) => seen.push(e.action));
  assert.equal(bus.listenerCount, 2);
  const e = bus.emit({ type: 'instance', action: 'create', id: ID, attributes: { name: 'web', image: 'go-http' } });
  assert.deepEqual(seen, ['create']);
  assert.deepEqual(observed, ['create']);
  assert.equal(e.attributes.name, 'web');
  offBad();
  off();
  off();
  assert.equal(bus.listenerCount, 0);
  bus.emit({ type: 'instance', action: 'destroy', id: ID, attributes: { name: 'web' } });
  assert.deepEqual(seen, ['create']);
  assert.deepEqual(observed, ['create', 'destroy']);
});

test('since/until: unix seconds with up to 9 decimals, in ns; anything else is a 400', () => {
  assert.equal(parseEventTime(undefined, 'since'), undefined);
  assert.equal(parseEventTime('', 'since'), undefined);
  assert.equal(parseEventTime('0', 'since'), 0n);
  assert.equal(parseEventTime('1700000000', 'since'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTime('1700000000.000000001', 'until'), 1_700_000_000_000_000_001n);
  assert.equal(parseEventTime('1700000000.5', 'until'), 1_700_000_000_500_000_000n);
  assert.equal(parseEventTime('1700000000.1234567891234', 'until'), 1_700_000_000_123_456_789n, 'past ns: cut');
  for (const bad of ['-1', 'now', '10m', '1e9', '1.2.3', ' 1', '9'.repeat(20), '2024-01-01T00:00:00Z'])
    assert.throws(() => parseEventTime(bad, 'since'), invalidArgument, bad);
});

test('filters: both JSON forms, unknown keys and bad shapes refused', () => {
  const f = parseEventFilters('{"type":{"container":true,"image":false},"event":["die","start"]}', DOCKER_EVENT_FILTERS);
  assert.deepEqual([...f.get('type')!], ['container']);
  assert.deepEqual([...f.get('event')!], ['die', 'start']);
  assert.equal(parseEventFilters(undefined, DOCKER_EVENT_FILTERS).size, 0);
  assert.equal(parseEventFilters('{"type":[]}', DOCKER_EVENT_FILTERS).size, 0, 'an empty list filters nothing');
  for (const bad of ['x', '[]', 'null', '"type"', '{"bogus":["a"]}', '{"type":"container"}', '{"type":[1]}', '{"container":["a"]}'])
    assert.throws(() => parseEventFilters(bad, UNIK_EVENT_FILTERS), invalidArgument, bad);
  assert.throws(() => parseEventFilters('{"bogus":["a"]}', DOCKER_EVENT_FILTERS), /invalid filter 'bogus'/);
});

test('filter matching follows Docker: exact type/event, labels all hold, image by name or tag, others by id or name prefix, keys ANDed', () => {
  const die: FilterSubject = { type: 'container', action: 'die', id: ID, attributes: { name: 'web', image: 'go-http', exitCode: '3', tier: 'front' } };
  const build: FilterSubject = { type: 'image', action: 'build', id: `sha256:${'cd'.repeat(32)}`, attributes: { name: 'go-http', language: 'go' } };
  const m = (json: string, s: FilterSubject) => matchesFilters(parseEventFilters(json, DOCKER_EVENT_FILTERS), s);
  assert.ok(m('{}', die));
  assert.ok(m('{"type":["container"]}', die));
  assert.ok(!m('{"type":["container"]}', build));
  assert.ok(m('{"event":["die","stop"]}', die));
  assert.ok(!m('{"event":["start"]}', die));
  assert.ok(m('{"container":["we"]}', die), 'a name prefix');
  assert.ok(m(`{"container":["${ID.slice(0, 12)}"]}`, die), 'an id prefix');
  assert.ok(!m('{"container":["eb"]}', die));
  assert.ok(!m('{"container":["web"]}', build), 'a container filter leaves other objects out (as Docker)');
  assert.ok(m('{"image":["go-http"]}', die), "a container's image");
  assert.ok(m('{"image":["go-http"]}', build));
  assert.ok(m('{"image":["go-http:latest"]}', { ...build, attributes: { name: 'go-http:latest' } }), 'with its tag');
  assert.ok(!m('{"image":["go"]}', die), 'image is exact, not a prefix');
  assert.ok(m('{"label":["tier"]}', die));
  assert.ok(m('{"label":["tier=front","exitCode=3"]}', die));
  assert.ok(!m('{"label":["tier=back"]}', die));
  assert.ok(!m('{"label":["tier","zone"]}', die), 'every label must hold');
  assert.ok(m('{"scope":["local"]}', die));
  assert.ok(!m('{"scope":["swarm"]}', die));
  assert.ok(!m('{"type":["container"],"event":["start"]}', die), 'keys ANDed');
});

const event = (over: Partial<UnikEvent> = {}): UnikEvent => ({
  timeNano: 1_700_000_000_123_456_789n,
  type: 'instance',
  action: 'die',
  id: ID,
  attributes: { image: 'go-http', name: 'web', exitCode: '143', execDuration: '4.200' },
  ...over,
});

test('Docker message: a container event with its legacy fields, exitCode and nanosecond time as an exact integer', () => {
  const m = dockerEvent(event());
  assert.deepEqual(m, {
    status: 'die',
    id: ID,
    from: 'go-http',
    Type: 'container',
    Action: 'die',
    Actor: { ID, Attributes: { image: 'go-http', name: 'web', exitCode: '143', execDuration: '4.200' } },
    scope: 'local',
    time: 1_700_000_000,
  });
  const line = dockerEventLine(event());
  assert.match(line, /,"time":1700000000,"timeNano":1700000000123456789\}$/);
  assert.equal(JSON.parse(line).Actor.Attributes.exitCode, '143');
  assert.ok(!line.includes('\n'));
});

test('Docker message: images by reference when pulled or pushed, else sha256:ID; volumes by name; no legacy fields for volumes', () => {
  const pull = dockerEvent(event({ type: 'image', action: 'pull', attributes: { name: 'app', ref: '127.0.0.1:5000/unik/app:v1', digest: 'sha256:00' } }));
  assert.equal(pull.Type, 'image');
  assert.equal(pull.Actor.ID, '127.0.0.1:5000/unik/app:v1');
  assert.equal(pull.id, '127.0.0.1:5000/unik/app:v1');
  assert.equal(pull.status, 'pull');
  assert.equal(pull.from, undefined);
  const build = dockerEvent(event({ type: 'image', action: 'build', attributes: { name: 'app', language: 'go', buildDuration: '12.000' } }));
  assert.equal(build.Actor.ID, `sha256:${ID}`);
  assert.equal(build.Action, 'build');
  const vol = dockerEvent(event({ type: 'volume', action: 'create', attributes: { name: 'data', type: 'ext4', driver: 'unik' } }));
  assert.equal(vol.Actor.ID, 'data');
  assert.equal(vol.status, undefined);
  assert.equal(vol.id, undefined);
});

test('unik line: PascalCase, Time in RFC 3339 with nanoseconds, TimeNano exact', () => {
  const line = unikEventLine(event());
  const j = JSON.parse(line);
  assert.equal(j.Type, 'instance');
  assert.equal(j.Action, 'die');
  assert.equal(j.Id, ID);
  assert.equal(j.Name, 'web');
  assert.equal(j.Attributes.exitCode, '143');
  assert.equal(j.Time, '2023-11-14T22:13:20.123456789Z');
  assert.match(line, /"TimeNano":1700000000123456789\}$/);
  assert.equal(isoNano(5n), '1970-01-01T00:00:00.000000005Z');
  assert.equal(jsonWithNano({}, 'n', 7n), '{"n":7}');
});
