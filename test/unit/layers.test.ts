// The layering rule of ARCHITECTURE.md, checked on the sources: src/model is a leaf, and no
// layer below the services imports the services (or the daemon, or the CLI) that drive it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { repoRoot } from '../../src/util/repo.js';

const SRC = join(repoRoot(), 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level folders of src/ that a file imports. */
function importedLayers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(SRC, resolve(dirname(file), m[1]!));
    if (!target.startsWith('..')) out.push(target.split('/')[0]!);
  }
  return out;
}

const RULES: Record<string, string[]> = {
  model: ['core', 'daemon', 'cli', 'client', 'store', 'providers', 'supervisor', 'runtime', 'compilers', 'base', 'hub', 'util', 'volumes', 'api'],
  store: ['core', 'daemon', 'cli', 'providers', 'supervisor', 'runtime'],
  providers: ['core', 'daemon', 'cli', 'store', 'runtime'],
  supervisor: ['core', 'daemon', 'cli', 'store', 'runtime', 'client'],
  compilers: ['core', 'daemon', 'cli', 'store', 'providers'],
  base: ['core', 'daemon', 'cli', 'store', 'providers'],
  hub: ['core', 'daemon', 'cli', 'store', 'providers'],
  volumes: ['core', 'daemon', 'cli', 'store'],
  util: ['core', 'daemon', 'cli', 'store', 'providers'],
  runtime: ['core', 'daemon', 'cli', 'store'],
  core: ['daemon', 'cli'],
};

test('no layer imports the layers that drive it; src/model imports nothing of the project', () => {
  const broken: string[] = [];
  for (const [layer, forbidden] of Object.entries(RULES)) {
    let dir: string;
    try {
      dir = join(SRC, layer);
      statSync(dir);
    } catch {
      continue;
    }
    for (const f of sources(dir))
      for (const l of importedLayers(f)) if (forbidden.includes(l) && l !== layer) broken.push(`${relative(SRC, f)} imports src/${l}`);
  }
  assert.deepEqual(broken, []);
});

test('src/ui runs in the browser: it imports its own modules, and only the types of src/api', () => {
  const broken: string[] = [];
  const ui = join(SRC, 'ui');
  for (const f of sources(ui)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^import\s+(type\s+)?[^'"]*['"]([^'"]+)['"]/gm)) {
      const target = m[2]!.startsWith('.') ? relative(SRC, resolve(dirname(f), m[2]!)) : `package ${m[2]}`;
      // the daemon serves dist/src/ui/*.js and nothing else: any other module would not load
      if (target.split('/')[0] === 'ui') continue;
      if (target.split('/')[0] === 'api' && m[1]) continue;
      broken.push(`${relative(SRC, f)} imports ${m[2]}`);
    }
  }
  assert.deepEqual(broken, []);
});
