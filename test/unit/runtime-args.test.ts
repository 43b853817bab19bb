import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, parseSignal, UsageError } from '../../src/runtime/args.js';
import { RuntimeLog } from '../../src/runtime/log.js';

test('the argv containerd\'s go-runc writes for create', () => {
  const a = parseArgs([
    '--root', '/run/containerd/runc/k8s.io', '--log', '/b/log.json', '--log-format', 'json', '--systemd-cgroup',
    'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/tmp/pty.sock', '--no-pivot', '--no-new-keyring', 'ID',
  ]);
  assert.deepEqual(a.global, { root: '/run/containerd/runc/k8s.io', log: '/b/log.json', logFormat: 'json', systemdCgroup: true, debug: false });
  assert.equal(a.verb, 'create');
  assert.deepEqual(a.flags, { bundle: '/b', 'pid-file': '/b/init.pid', 'console-socket': '/tmp/pty.sock', 'no-pivot': true, 'no-new-keyring': true });
  assert.deepEqual(a.operands, ['ID']);
});

test('--flag=value, short aliases, kill/delete/ps forms', () => {
  let a = parseArgs(['--root=/r', 'create', '-b', '/b', 'x']);
  assert.equal(a.global.root, '/r');
  assert.equal(a.flags.bundle, '/b');
  a = parseArgs(['kill', '--all', 'x', '9']);
  assert.deepEqual([a.verb, a.flags.all, a.operands], ['kill', true, ['x', '9']]);
  a = parseArgs(['delete', '--force', 'x']);
  assert.equal(a.flags.force, true);
  a = parseArgs(['ps', '--format', 'json', 'x']);
  assert.deepEqual([a.flags.format, a.operands], ['json', ['x']]);
  a = parseArgs(['ps', '-f', 'json', 'x']);
  assert.equal(a.flags.format, 'json');
  a = parseArgs(['exec', '--process', '/tmp/p.json', '--detach', '--pid-file', '/p', 'x']);
  assert.deepEqual([a.flags.process, a.flags.detach, a.operands], ['/tmp/p.json', true, ['x']]);
  a = parseArgs(['exec', 'x', 'sh', '-c', 'echo hi']);
  assert.deepEqual(a.operands, ['x', 'sh', '-c', 'echo hi'], 'after exec ID, flags belong to the command');
  a = parseArgs(['update', '--resources', '-', 'x']);
  assert.deepEqual([a.flags.resources, a.operands], ['-', ['x']]);
});

test('version and help without a verb; bad global flags are usage errors', () => {
  assert.equal(parseArgs(['--version']).version, true);
  assert.equal(parseArgs(['-v']).version, true);
  assert.equal(parseArgs(['--help']).help, true);
  assert.throws(() => parseArgs(['--log-format', 'xml', 'state', 'x']), UsageError);
  assert.throws(() => parseArgs(['--nope', 'state', 'x']), /flag provided but not defined: -nope/);
  assert.throws(() => parseArgs(['--root']), /flag needs an argument: --root/);
  assert.throws(() => parseArgs(['create', '--bundle']), /flag needs an argument: --bundle/);
});

test('signals as runc takes them: numbers, names with or without SIG; SIGTERM by default', () => {
  assert.equal(parseSignal(undefined), 15);
  assert.equal(parseSignal('9'), 9);
  assert.equal(parseSignal('KILL'), 9);
  assert.equal(parseSignal('SIGKILL'), 9);
  assert.equal(parseSignal('sigusr1'), 10);
  assert.throws(() => parseSignal('SIGNOPE'), /unknown signal/);
  assert.throws(() => parseSignal('99'), /invalid signal/);
});

test('the runtime log: runc\'s JSON lines (what the shim parses), or logrus-like text', () => {
  const j = JSON.parse(new RuntimeLog(undefined, 'json').line('error', 'boom "x"'));
  assert.deepEqual(Object.keys(j), ['level', 'msg', 'time']);
  assert.equal(j.level, 'error');
  assert.equal(j.msg, 'boom "x"');
  assert.match(new RuntimeLog(undefined, 'text').line('warning', 'hm'), /^time="[^"]+" level=warning msg="hm"\n$/);
});
