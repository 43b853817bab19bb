import { invalid } from '../model/errors.js';
import { goCompiler } from './go.js';
import { nodejsCompiler } from './nodejs.js';
import { pythonCompiler } from './python.js';
import { javaCompiler } from './java.js';
import { cCompiler, cppCompiler, elfCompiler } from './native.js';
import { ociImageCompiler } from './oci-image.js';
import type { Compiler } from './types.js';
import type { Arch } from '../model/arch.js';

/**
 * The compiler registry: adding a language is adding an entry here, nothing else. Detection
 * tries them in this order, so the C compiler (any Makefile) comes after the runtimes.
 */
export const compilers: Compiler[] = [goCompiler, nodejsCompiler, pythonCompiler, javaCompiler, cppCompiler, cCompiler, elfCompiler, ociImageCompiler];
export function compilerFor(language: string): Compiler {
  const c = compilers.find((x) => x.language === language);
  if (!c)
    throw invalid('UNKNOWN_LANGUAGE', `unknown language ${JSON.stringify(language)}`, `available languages: ${compilers.map((x) => x.language).join(', ')}`);
  return c;
}

/** The languages that build images for an architecture. */
export function compilersFor(arch: Arch): string[] {
  return compilers.filter((c) => c.arches.includes(arch)).map((c) => c.language);
}

/** Picks the compiler whose marker files are in the upload. */
export async function detectCompiler(dir: string): Promise<Compiler> {
  for (const c of compilers) if (await c.detect(dir)) return c;
  throw invalid(
    'LANGUAGE_NOT_DETECTED',
    `could not detect the app's language: looked for ${compilers.map((c) => `${c.looksFor} (${c.language})`).join(', ')}`,
    'give --language, or add the file that marks your language',
  );
}
