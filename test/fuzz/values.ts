import fc from 'fast-check';
import { IMAGE_ID, IMAGE_NAME, INSTANCES, MOUNT_POINT, VOLUME_NAME } from './fixtures.js';

// The values requests are made of: strings an attacker or a confused client sends, and
// references that hit the fixtures. Every arbitrary here is pure (no I/O).

/** Strings known to break naive code: paths, NULs, encodings, shells, numbers, prototypes. */
export const NASTY = [
  '', ' ', '.', '..', '../..', '../../../../../../etc/passwd', '..\\..\\windows', '/etc/passwd', '/', '//', 'a/b', './x',
  '%00', 'a%00b', '\0', 'a\0b', '%2e%2e%2f%2e%2e%2f', '..%2f..%2f', '%252e%252e', '%', '%zz', '%c0%ae%c0%ae/',
  'a b', '\t', '\r\nX-Injected: 1', '\n', '$(id)', '`id`', ';rm -rf /', '|id', '${HOME}', '%s%s%s%n', '-rf', '--force', '-',
  'true', 'TRUE', 'True', '1', '0', '-1', '1.5', 'NaN', 'Infinity', '-Infinity', '1e309', '1e3', '0x10', '0b1', '9'.repeat(400), ' 1 ',
  'null', 'undefined', '[]', '{}', '[object Object]', '__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString',
  'sha256:', `sha256:${'f'.repeat(64)}`, `sha256:${IMAGE_ID}`, 'docker.io/library/x', 'library/x:latest', 'x:', ':x', 'a:b:c', '@', 'a@sha256:zz',
  '\u202e\u0644', '😀', 'é', 'e\u0301', '\uFEFF', '\uD800', '\uDFFF', 'İ', 'ß', '中文', '\u0000\u0001\u001f\u007f', '\u2028\u2029',
  'x'.repeat(129), 'y'.repeat(4096), 'CON', 'NUL', 'aux.txt', '~', '~root', '*', '?', '#', '&', '=', '+', '<script>alert(1)</script>', "' OR 1=1 --",
  'fa1', 'c0f', 'c0ffee0', 'fa11ed00', 'ab', 'abc', 'fuzz-created\0', ' fuzz-img', 'FUZZ-IMG', 'fuzz-img/', 'fuzz-img:latest', 'fuzz-img:v2',
];

/** A valid name (checkName's pattern): these make records when the rest of the request is right. */
export const validName = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,15}$/).map((s) => `fz-${s}`);

const hexPrefix = fc.stringMatching(/^[0-9a-f]{3,12}$/);

/** Arbitrary text of every kind, weighted towards short strings. */
export const anyText = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: hexPrefix },
  { weight: 1, arbitrary: validName },
  { weight: 1, arbitrary: fc.nat({ max: 300_000 }).map((n) => 'A'.repeat(n)) },
);

export const instanceRef = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...INSTANCES.flatMap((i) => [i.name, i.id, i.id.slice(0, 12)])) },
  { weight: 1, arbitrary: validName },
  { weight: 3, arbitrary: anyText },
);

export const imageRef = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(IMAGE_NAME, IMAGE_ID, IMAGE_ID.slice(0, 12), `${IMAGE_NAME}:latest`, `sha256:${IMAGE_ID}`, `docker.io/library/${IMAGE_NAME}`) },
  { weight: 1, arbitrary: validName },
  { weight: 3, arbitrary: anyText },
);

export const volumeRef = fc.oneof({ weight: 3, arbitrary: fc.constant(VOLUME_NAME) }, { weight: 1, arbitrary: validName }, { weight: 3, arbitrary: anyText });

/** Query values as a client may send them: booleans, numbers, text. */
export const queryValue = fc.oneof(
  fc.constantFrom('1', '0', 'true', 'false', 'TRUE', 'yes', '', '-1', '10', '0.5', '1e400', 'NaN', '99999999999999999999', 'all', 'not-running', 'next-exit', 'removed', 'SIGKILL', 'HUP', '64', '65', '9'),
  anyText,
);

/** A mount point: the fixture's, reserved ones, or nonsense. */
export const mountPoint = fc.oneof(fc.constantFrom(MOUNT_POINT, '/', '/proc', '/dev/x', '/unik', '/data/../etc', 'data', '/a:b', '/a b', `/${'x'.repeat(300)}`), anyText);

/** A registry reference that can never leave this machine (a closed port, or a name that cannot resolve). */
export function registryRef(closedPort: number) {
  return fc.oneof(
    fc.constantFrom(`127.0.0.1:${closedPort}/fuzz/x:v1`, `localhost:${closedPort}/a`, 'registry.invalid/x:1', `127.0.0.1:${closedPort}/x@sha256:${'0'.repeat(64)}`, 'docker.io/library/x', 'x', 'ubuntu:latest'),
    anyText,
  );
}

/** Any JSON value, including deep and odd ones. */
export const anyJson = fc.oneof({ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(...NASTY) }, { weight: 1, arbitrary: fc.double() });

/** A value for a field: mostly the right type, sometimes any JSON. */
export function field<T>(good: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> {
  return fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: anyJson });
}

export const stringMap = fc.dictionary(anyText, anyText, { maxKeys: 4 });
