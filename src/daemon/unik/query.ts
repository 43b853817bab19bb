import { Type } from '@sinclair/typebox';

/**
 * The query keys a route reads, each a single string. A repeated key (?ref=a&ref=b) arrives
 * as an array, which string code then breaks on (a 500); the schema refuses it with a 400
 * instead. Other keys pass untouched (clients add their own).
 */
export function queryStrings(...keys: string[]) {
  return Type.Object(Object.fromEntries(keys.map((k) => [k, Type.Optional(Type.String())])));
}
