// The Node runtime the buildpack carries, and copies into each droplet: the node binary, the
// compiled modules one entry point imports (followed statically, file by file), and the npm
// packages those import with their own dependencies. A Cloud Foundry stack has no Node, and
// neither the staging nor the app container sees where the buildpack came from, so both must
// hold all they run.
import { chmod, copyFile, cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** The folder holding dist/ and node_modules/: a unik checkout, or a packaged buildpack's lib/. */
export const RUNTIME_ROOT = resolve(import.meta.dirname, '../../../..');
export const BUILDPACK_ENTRY = 'dist/integrations/cloudfoundry/lib/buildpack.js';
export const LAUNCH_ENTRY = 'dist/integrations/cloudfoundry/lib/launch.js';

// static imports and re-exports as tsc writes them, and import() of a literal name
const IMPORT = /^\s*(?:import|export)\s+(?:[^'"`;=()]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
/** an import() of a literal name (modules loaded where used, e.g. the client's undici and tar) */
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

async function modulesOf(root: string, entries: string[]): Promise<{ files: string[]; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = async (file: string): Promise<void> => {
    if (files.has(file)) return;
    files.add(file);
    const text = await readFile(file, 'utf8');
    for (const m of [...text.matchAll(IMPORT), ...text.matchAll(DYNAMIC_IMPORT)]) {
      const spec = m[1]!;
      if (spec.startsWith('.')) await visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/'));
    }
  };
  for (const e of entries) await visit(join(root, e));
  return { files: [...files], packages };
}

/** Where Node finds `name` from a package in `from`: its own node_modules, then each one above, up to the root's. */
async function packageDir(root: string, from: string, name: string): Promise<string> {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (await stat(join(candidate, 'package.json')).then(() => true, () => false)) return candidate;
    if (dir === root || !dir.startsWith(root + sep)) break;
  }
  throw new Error(`the npm package ${name} (needed from ${relative(root, from) || '.'}) is not installed under ${root}`);
}

/** Copies what `entries` run into `dest` (dest/dist/…, dest/node_modules/…, dest/package.json). */
export async function copyModules(root: string, entries: string[], dest: string): Promise<void> {
  const { files, packages } = await modulesOf(root, entries);
  for (const f of files) {
    const to = join(dest, relative(root, f));
    await mkdir(dirname(to), { recursive: true });
    await copyFile(f, to);
  }
  // each package whole (its nested node_modules included), then what its package.json depends on
  const done = new Set<string>();
  const todo = [...packages].map((name) => ({ name, from: root }));
  while (todo.length) {
    const { name, from } = todo.pop()!;
    const dir = await packageDir(root, from, name);
    if (done.has(dir)) continue;
    done.add(dir);
    await cp(dir, join(dest, relative(root, dir)), { recursive: true, verbatimSymlinks: true });
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) todo.push({ name: dep, from: dir });
  }
  // the compiled files are ES modules: Node reads that from the nearest package.json
  await writeFile(join(dest, 'package.json'), `${JSON.stringify({ name: 'unik-cloudfoundry-runtime', private: true, type: 'module' }, null, 2)}\n`);
}

/** The node binary running this script, copied to `to` (executable). */
export async function copyNode(to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await copyFile(process.execPath, to);
  await chmod(to, 0o755);
}
