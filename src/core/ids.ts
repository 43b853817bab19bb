import { randomBytes } from 'node:crypto';
import { invalid, notFound, conflict } from '../model/errors.js';

/** 64 hex characters, like a Docker id; shown shortened to 12. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function checkName(kind: string, name: string): void {
  if (!NAME.test(name))
    throw invalid(
      'BAD_NAME',
      `invalid ${kind} name ${JSON.stringify(name)}`,
      'names start with a letter or digit and use only letters, digits, "_", "." and "-" (at most 128)',
    );
}

/**
 * Resolves what a user typed to one record: exact id, then exact name, then a unique id prefix.
 * (2016 returned the first substring match in random order; that is not copied.)
 */
export function resolveRef<T extends { id: string; name: string }>(kind: string, ref: string, all: T[]): T {
  const exact = all.find((x) => x.id === ref) ?? all.find((x) => x.name === ref);
  if (exact) return exact;
  if (/^[0-9a-f]{3,63}$/.test(ref)) {
    const byPrefix = all.filter((x) => x.id.startsWith(ref));
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1)
      throw conflict('AMBIGUOUS_REF', `${kind} id prefix ${ref} matches ${byPrefix.length} ${kind}s`, 'give more characters of the id, or the name');
  }
  const code = `${kind.toUpperCase()}_NOT_FOUND`;
  throw notFound(code, `no such ${kind}: ${ref}`, kind === 'image' ? 'see `unik images`' : 'see `unik ps`');
}
