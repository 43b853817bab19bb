import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, posix } from 'node:path';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { internal, invalid, unavailable } from '../model/errors.js';
import type { Arch } from '../model/arch.js';
import type { ProgressFn } from '../model/types.js';
import { execFileCollect, lastLines, type ExecResult } from '../util/exec.js';
import { fileInRoot } from './elf-deps.js';
import { lockCache } from '../util/cache-lock.js';

// Programs for another architecture come from Debian's own packages for it: apt, with a private
// configuration under the cache (its own lists, archives and an empty dpkg status), computes a
// package's whole dependency closure and downloads it; each .deb is unpacked with dpkg-deb -x
// into a root folder per package set. The host's dpkg state is never touched: no foreign
// architecture is added, nothing is installed.

export type DebianArch = Arch;

/** Debian policy's package names; anything else (options, paths, apt patterns) is refused. */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]{0,99}$/;
const VERSION = /^[A-Za-z0-9.+~:-]{1,100}$/;
const LISTS_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const ARCHIVE_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const TRUSTED_PARTS = '/etc/apt/trusted.gpg.d';
const HOST_DEB822 = '/etc/apt/sources.list.d';
const HOST_ONE_LINE = '/etc/apt/sources.list';
/** Debian's own archives: mirrors of unknown origin are not followed */
const DEBIAN_URI = /^https?:\/\/(deb|security|ftp|ftp\.[a-z]{2})\.debian\.org\/debian(-security)?\/?$/;
const SUITE = /^[a-z][a-z0-9-]{0,63}(\/updates)?$/;
const COMPONENTS = ['main', 'contrib', 'non-free', 'non-free-firmware'];

export interface DebianSource {
  uri: string;
  suite: string;
  components: string[];
}

/** The private apt tree of one architecture. */
interface AptTree {
  base: string;
  conf: string;
  sourceList: string;
  status: string;
  archives: string;
  roots: string;
  /** written after a successful update: the sources it was for */
  stamp: string;
}

function aptTree(cacheDir: string, arch: DebianArch): AptTree {
  const base = join(cacheDir, `debian-${arch}`);
  return {
    base,
    conf: join(base, 'apt.conf'),
    sourceList: join(base, 'etc', 'sources.list'),
    status: join(base, 'dpkg', 'status'),
    archives: join(base, 'cache', 'archives'),
    roots: join(base, 'roots'),
    stamp: join(base, 'lists.stamp'),
  };
}

/**
 * A directory holding `packages` for `arch` and their whole dependency closure, unpacked. The
 * same package set (same .deb files) gives the same directory; it is made once.
 */
export async function ensureDebianPackages(cacheDir: string, arch: DebianArch, packages: string[], progress: ProgressFn): Promise<string> {
  for (const p of packages)
    if (!PACKAGE_NAME.test(p)) throw invalid('BAD_PACKAGE_NAME', `${JSON.stringify(p.slice(0, 100))} is not a Debian package name`, 'package names are lower-case letters, digits and + . - (e.g. webfs)');
  if (!packages.length) throw invalid('BAD_PACKAGE_NAME', 'no Debian package named');
  const wanted = [...new Set(packages)].sort();
  const t = aptTree(cacheDir, arch);
  await prepareTree(t, arch);
  const release = await lockCache(t.base, progress, 'packages', `another build fetching Debian ${arch} packages`);
  try {
    await ensureLists(t, progress, arch);
    const debs = await closureOf(t, wanted, arch);
    const key = createHash('sha256').update(JSON.stringify({ wanted, debs: [...debs].sort() })).digest('hex').slice(0, 32);
    const root = join(t.roots, key);
    if (existsSync(root)) return root;
    await download(t, wanted, debs, progress, arch);
    await unpack(t, key, debs, progress, arch);
    return root;
  } finally {
    await release();
  }
}

/** The folders and the apt configuration file; an empty dpkg status so apt computes the whole closure. */
async function prepareTree(t: AptTree, arch: DebianArch): Promise<void> {
  // apt.conf quotes values with "…" and has no escapes
  if (/["\n\r]/.test(t.base)) throw internal('BAD_CACHE_PATH', `the cache folder ${t.base} has characters apt's configuration cannot hold`);
  for (const d of ['etc/sources.list.d', 'etc/preferences.d', 'dpkg/updates', 'state/lists/partial', 'cache/archives/partial', 'log', 'roots']) await mkdir(join(t.base, d), { recursive: true, mode: 0o700 });
  // unpacked roots are read by the daemon alone
  await chmod(t.base, 0o700);
  if (!existsSync(t.status)) await writeFile(t.status, '');
  const conf = aptConf(t, arch);
  if ((await readFile(t.conf, 'utf8').catch(() => '')) !== conf) await writeFile(t.conf, conf);
}

/** The private apt configuration file of an architecture, written if needed (for `apt-config -c` and tests). */
export async function privateAptConfig(cacheDir: string, arch: DebianArch): Promise<string> {
  const t = aptTree(cacheDir, arch);
  await prepareTree(t, arch);
  return t.conf;
}

/** The same, with its package lists fetched (at most once a day): ready for `apt-get -c CONF install -s` (the first-run bench). */
export async function aptConfigWithLists(cacheDir: string, arch: DebianArch, progress: ProgressFn = () => {}): Promise<string> {
  const t = aptTree(cacheDir, arch);
  await prepareTree(t, arch);
  await ensureLists(t, progress, arch);
  return t.conf;
}

/**
 * Read after the host's apt.conf.d (apt-get -c), so it wins over it: every place apt reads or
 * writes is private, only this architecture exists, and unsigned archives are never accepted
 * whatever the host allows.
 */
function aptConf(t: AptTree, arch: DebianArch): string {
  const b = t.base;
  return [
    // apt reads the host's apt.conf.d first: lists it appends to and hooks it runs are cleared,
    // and the freshness checks a host may turn off are on (an old, validly signed Release file
    // replayed would freeze the packages on vulnerable versions)
    '#clear APT::Architectures;',
    '#clear APT::Update::Pre-Invoke;',
    '#clear APT::Update::Post-Invoke;',
    '#clear APT::Update::Post-Invoke-Success;',
    '#clear DPkg::Pre-Invoke;',
    '#clear DPkg::Post-Invoke;',
    '#clear DPkg::Pre-Install-Pkgs;',
    'Acquire::Check-Valid-Until "true";',
    'Acquire::Check-Date "true";',
    `Dir::State "${b}/state";`,
    `Dir::State::status "${t.status}";`,
    `Dir::Cache "${b}/cache";`,
    `Dir::Log "${b}/log";`,
    `Dir::Etc::SourceList "${t.sourceList}";`,
    `Dir::Etc::SourceParts "${b}/etc/sources.list.d";`,
    `Dir::Etc::Preferences "${b}/etc/preferences";`,
    `Dir::Etc::PreferencesParts "${b}/etc/preferences.d";`,
    // the host's keyrings: sources name the Debian archive keyring; trusted.gpg.d otherwise
    `Dir::Etc::Trusted "${b}/etc/trusted.gpg";`,
    `Dir::Etc::TrustedParts "${TRUSTED_PARTS}";`,
    `APT::Architecture "${arch}";`,
    `APT::Architectures { "${arch}"; };`,
    'APT::Install-Recommends "false";',
    'APT::Install-Suggests "false";',
    'APT::Get::AllowUnauthenticated "false";',
    'Acquire::AllowInsecureRepositories "false";',
    'Acquire::AllowDowngradeToInsecureRepositories "false";',
    'Acquire::Languages "none";',
    '',
  ].join('\n');
}

async function apt(t: AptTree, args: string[], onLine?: (l: string) => void): Promise<ExecResult> {
  // APT_CONFIG would bring in a configuration file of its own
  const { APT_CONFIG: _ignored, ...inherited } = process.env;
  const env = { ...inherited, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  return execFileCollect('apt-get', ['-c', t.conf, ...args], { env, onLine }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_APT', 'apt-get is not installed on the daemon host', 'images for another architecture take their programs from Debian packages: run the daemon on Debian (apt and dpkg)');
    throw e;
  });
}

/** How to run it by hand, for error hints. */
function byHand(t: AptTree, args: string[]): string {
  return `apt-get -c ${t.conf} ${args.join(' ')}`;
}

/** Refreshes the private package lists when they are missing, older than a day, or the sources changed. */
async function ensureLists(t: AptTree, progress: ProgressFn, arch: DebianArch): Promise<void> {
  const sources = sourcesListText(await hostDebianSources());
  const stamp = await stat(t.stamp).catch(() => undefined);
  const sameSources = stamp !== undefined && (await readFile(t.stamp, 'utf8')) === sources;
  if (sameSources && Date.now() - stamp.mtimeMs < LISTS_MAX_AGE_MS) return;
  await writeFile(t.sourceList, sources);
  progress({ step: 'packages', message: `updating the Debian ${arch} package lists (at most once a day)` });
  const r = await apt(t, ['update']);
  // apt-get update exits 0 when some index could not be fetched: its W: lines say so
  if (r.code === 0 && !/^(E|W): (Failed to fetch|Some index files failed)/m.test(r.output)) {
    await writeFile(t.stamp, sources);
    return;
  }
  if (sameSources) {
    progress({ step: 'packages', message: `warning: the Debian ${arch} package lists could not be refreshed; using the ones from ${new Date(stamp.mtimeMs).toISOString()}` });
    return;
  }
  throw unavailable('DEBIAN_UPDATE_FAILED', `downloading the Debian ${arch} package lists failed:\n${lastLines(r.output, 15)}`, `check that the daemon host reaches ${hostsOf(sources)}, then try: ${byHand(t, ['update'])}`);
}

function hostsOf(sourcesList: string): string {
  return [...new Set([...sourcesList.matchAll(/https?:\/\/([^/\s]+)/g)].map((m) => m[1]!))].join(', ');
}

/** The .deb file names of `wanted` and everything they depend on, computed by apt against the empty status. */
async function closureOf(t: AptTree, wanted: string[], arch: DebianArch): Promise<string[]> {
  const args = ['install', '-s', '-y', '--no-install-recommends', ...wanted];
  const r = await apt(t, args);
  if (r.code !== 0) throw aptInstallError(t, r, wanted, arch, args);
  const debs = new Map<string, string>();
  for (const m of r.output.matchAll(/^Inst (\S+) \((\S+) [^\n]*?\[([a-z0-9]+)\]\)/gm)) {
    const [, name, version, pkgArch] = m as unknown as [string, string, string, string];
    if (!PACKAGE_NAME.test(name) || !VERSION.test(version) || (pkgArch !== arch && pkgArch !== 'all'))
      throw internal('APT_OUTPUT', `apt-get planned an unexpected package: ${m[0].slice(0, 200)}`);
    // apt's own file name: the epoch's ":" is written %3a
    debs.set(name, `${name}_${version.replace(/:/g, '%3a')}_${pkgArch}.deb`);
  }
  // an exact name, not a virtual package or one of apt's patterns that matched something else
  const missing = wanted.filter((w) => !debs.has(w));
  if (missing.length) throw invalid('UNKNOWN_DEBIAN_PACKAGE', `Debian has no ${arch} package named ${missing.join(', ')}`, 'name a real (not virtual) package of the Debian release the daemon host runs');
  return [...debs.values()];
}

function aptInstallError(t: AptTree, r: ExecResult, wanted: string[], arch: DebianArch, args: string[]): Error {
  if (/^E: (Unable to locate package |Package '[^']*' has no installation candidate|Couldn't find any package)/m.test(r.output))
    return invalid('UNKNOWN_DEBIAN_PACKAGE', `Debian has no ${arch} package ${wanted.join(', ')} to install:\n${lastLines(r.output, 6)}`, 'name a real (not virtual) package of the Debian release the daemon host runs');
  if (/unmet dependencies/i.test(r.output))
    return invalid('DEBIAN_PACKAGE_UNINSTALLABLE', `the Debian ${arch} packages ${wanted.join(', ')} cannot be installed:\n${lastLines(r.output, 12)}`, 'the archive may be mid-update; try again later');
  return unavailable('APT_FAILED', `apt-get failed computing the Debian ${arch} packages ${wanted.join(', ')}:\n${lastLines(r.output, 12)}`, `try: ${byHand(t, args)}`);
}

/** Downloads (into the private archives, verified by apt) whatever .deb of the closure is not there yet. */
async function download(t: AptTree, wanted: string[], debs: string[], progress: ProgressFn, arch: DebianArch): Promise<void> {
  const missing = debs.filter((d) => !existsSync(join(t.archives, d)));
  if (!missing.length) return;
  progress({ step: 'packages', message: `downloading ${missing.length} Debian ${arch} package${missing.length > 1 ? 's' : ''} for ${wanted.join(', ')}` });
  const args = ['install', '--download-only', '--no-install-recommends', '-y', ...wanted];
  const r = await apt(t, args, (line) => {
    if (line.startsWith('Get:')) progress({ step: 'packages', message: line.slice(0, 200) });
  });
  if (r.code !== 0) throw unavailable('DEBIAN_DOWNLOAD_FAILED', `downloading the Debian ${arch} packages ${wanted.join(', ')} failed:\n${lastLines(r.output, 15)}`, `check the network to the Debian archive, then try: ${byHand(t, args)}`);
  const still = debs.filter((d) => !existsSync(join(t.archives, d)));
  if (still.length) throw internal('APT_OUTPUT', `apt-get downloaded the packages but these files are not where apt keeps them: ${still.join(', ')}`);
}

/** Unpacks every .deb into a new folder, renamed into place once complete: a crash leaves no half root. */
async function unpack(t: AptTree, key: string, debs: string[], progress: ProgressFn, arch: DebianArch): Promise<void> {
  // left over by a build that crashed here (we hold the lock: nobody else is unpacking)
  for (const name of await readdir(t.roots)) if (name.startsWith('.tmp-')) await rm(join(t.roots, name), { recursive: true, force: true });
  const tmp = join(t.roots, `.tmp-${key}-${process.pid}`);
  await mkdir(tmp);
  progress({ step: 'packages', message: `unpacking ${debs.length} Debian ${arch} packages` });
  for (const deb of debs) {
    const r = await execFileCollect('dpkg-deb', ['-x', join(t.archives, deb), tmp]).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw unavailable('NO_DPKG', 'dpkg-deb is not installed on the daemon host', 'run the daemon on Debian (apt and dpkg)');
      throw e;
    });
    if (r.code !== 0) {
      await rm(tmp, { recursive: true, force: true });
      throw unavailable('DEBIAN_UNPACK_FAILED', `unpacking ${deb} failed:\n${lastLines(r.output, 10)}`, `remove ${join(t.archives, deb)} and build again to download it anew`);
    }
  }
  // dpkg-deb -x keeps setuid/setgid bits (sudo, passwd…): nothing in a cache root needs them
  const r = await execFileCollect('chmod', ['-R', 'u-s,g-s', tmp]);
  if (r.code !== 0) {
    await rm(tmp, { recursive: true, force: true });
    throw internal('DEBIAN_UNPACK_FAILED', `clearing setuid bits in the unpacked packages failed:\n${lastLines(r.output, 5)}`);
  }
  await rename(tmp, join(t.roots, key));
}

/** The host's Debian archives, from its deb822 .sources files and its one-line sources.list. */
export async function hostDebianSources(): Promise<DebianSource[]> {
  const deb822 = await readdir(HOST_DEB822).catch(() => [] as string[]);
  const texts822 = await Promise.all(deb822.filter((f) => f.endsWith('.sources')).sort().map((f) => readFile(join(HOST_DEB822, f), 'utf8').catch(() => '')));
  const oneLine = await Promise.all([HOST_ONE_LINE, ...deb822.filter((f) => f.endsWith('.list')).sort().map((f) => join(HOST_DEB822, f))].map((f) => readFile(f, 'utf8').catch(() => '')));
  return debianSourcesFrom(texts822, oneLine);
}

/** Keeps the `deb` entries of Debian's own archives, merged by archive and suite. */
export function debianSourcesFrom(deb822Texts: string[], oneLineTexts: string[]): DebianSource[] {
  const out = new Map<string, DebianSource>();
  const add = (uri: string, suite: string, components: string[]) => {
    if (!DEBIAN_URI.test(uri) || !SUITE.test(suite)) return;
    const comps = components.filter((c) => COMPONENTS.includes(c));
    if (!comps.length) return;
    const clean = uri.replace(/\/$/, '');
    const key = `${clean} ${suite}`;
    const had = out.get(key);
    out.set(key, { uri: clean, suite, components: [...new Set([...(had?.components ?? []), ...comps])] });
  };
  for (const text of deb822Texts)
    for (const stanza of deb822Stanzas(text)) {
      const words = (k: string) => (stanza.get(k) ?? '').split(/\s+/).filter(Boolean);
      if (!words('types').includes('deb') || /^(no|false)$/i.test(stanza.get('enabled') ?? '')) continue;
      for (const uri of words('uris')) for (const suite of words('suites')) add(uri, suite, words('components'));
    }
  for (const text of oneLineTexts)
    for (const raw of text.split('\n')) {
      // deb [options] uri suite component...
      const line = raw.replace(/#.*/, '').replace(/\[[^\]]*\]/, ' ').trim().split(/\s+/);
      if (line[0] === 'deb' && line.length >= 4) add(line[1]!, line[2]!, line.slice(3));
    }
  return [...out.values()];
}

/** deb822 paragraphs as lower-cased field → value (continuation lines joined, comments dropped). */
function deb822Stanzas(text: string): Map<string, string>[] {
  const stanzas: Map<string, string>[] = [];
  let cur = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    if (!line.trim()) {
      if (cur.size) stanzas.push(cur);
      cur = new Map();
      last = undefined;
    } else if (/^\s/.test(line) && last) cur.set(last, `${cur.get(last)} ${line.trim()}`);
    else {
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      cur.set(last, m[2]!.trim());
    }
  }
  if (cur.size) stanzas.push(cur);
  return stanzas;
}

function sourcesListText(sources: DebianSource[]): string {
  if (!sources.length)
    throw unavailable('NO_DEBIAN_SOURCES', `the daemon host has no Debian archive in ${HOST_DEB822}/*.sources or ${HOST_ONE_LINE}`, 'images for another architecture take their programs from Debian packages: configure deb.debian.org as an apt source of the host');
  // the Debian archive keyring, when the host has it, is the only key these archives may be signed with
  const signedBy = existsSync(ARCHIVE_KEYRING) ? ` [signed-by=${ARCHIVE_KEYRING}]` : '';
  return sources.map((s) => `deb${signedBy} ${s.uri} ${s.suite} ${s.components.join(' ')}\n`).join('');
}

// ---- which host package a program comes from ----

/** The top folders Debian's merged /usr links into /usr. */
const MERGED_USR = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

/** The same file's other name on a merged-/usr system: /bin/ls ⇄ /usr/bin/ls. */
export function mergedUsrAlias(p: string): string | undefined {
  const [, top, ...rest] = p.split('/');
  if (!top || !rest.length) return undefined;
  if (top === 'usr' && MERGED_USR.includes(rest[0]!) && rest.length > 1) return `/${rest.join('/')}`;
  if (MERGED_USR.includes(top)) return `/usr/${top}/${rest.join('/')}`;
  return undefined;
}

/**
 * Which host package owns the file, and under which path dpkg knows it: the path as given, its
 * merged-/usr alias, or where it really is (alternatives link elsewhere). Undefined when none.
 */
export async function debianOwnerOf(hostPath: string): Promise<{ package: string; path: string } | undefined> {
  // dpkg-query -S takes shell patterns: only plain absolute paths are asked about
  if (!isAbsolute(hostPath) || /[*?[\]\\\n\r\0]/.test(hostPath)) return undefined;
  const given = posix.normalize(hostPath);
  // a folder belongs to many packages: only files are asked about
  if ((await stat(given).catch(() => undefined))?.isDirectory()) return undefined;
  const real = await realpath(given).catch(() => undefined);
  const candidates = [...new Set([given, mergedUsrAlias(given), real, real && mergedUsrAlias(real)].filter((p): p is string => !!p && !/[*?[\]\\\n\r]/.test(p)))];
  const r = await execFileCollect('dpkg-query', ['-S', ...candidates], { env: { ...process.env, LC_ALL: 'C' } }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw unavailable('NO_DPKG', 'dpkg-query is not installed on the daemon host', 'run the daemon on Debian (apt and dpkg)');
    throw e;
  });
  // "pkg[:arch][, pkg2]: /path"; diversion lines and "no path found" messages never end in ": <candidate>" with a package before it
  for (const c of candidates)
    for (const line of r.output.split('\n')) {
      if (!line.endsWith(`: ${c}`) || line.startsWith('diversion by ') || line.startsWith('local diversion')) continue;
      const owner = line.slice(0, -(c.length + 2)).split(', ')[0]!.split(':')[0]!;
      if (PACKAGE_NAME.test(owner)) return { package: owner, path: c };
    }
  return undefined;
}

/** The host (amd64) package that owns a file, e.g. /usr/bin/webfsd → webfs. */
export async function debianPackageOf(hostPath: string): Promise<string | undefined> {
  return (await debianOwnerOf(hostPath))?.package;
}

/**
 * A package's version as its Debian changelog's first line gives it, e.g. 18.20.4+dfsg-1~deb12u3;
 * undefined when the package has none. A binNMU logs its own version in changelog.Debian.<arch>.gz.
 */
export async function debianPackageVersion(root: string, pkg: string, arch: Arch): Promise<string | undefined> {
  for (const name of [`changelog.Debian.${arch}.gz`, 'changelog.Debian.gz']) {
    const path = await fileInRoot(root, `/usr/share/doc/${pkg}/${name}`);
    const head = path && (await gzipHead(path));
    // the first word is the source package's name (python3.11 for python3.11-minimal)
    const m = head && /^\S+ \(([A-Za-z0-9.+~:-]{1,100})\)/.exec(head);
    if (m) return m[1];
  }
  return undefined;
}

/** The first line of a gzipped file, reading only its beginning (a changelog can be long). */
async function gzipHead(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(16 * 1024);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    // a cut-short stream is fine: sync flush gives what it holds
    const text = gunzipSync(b.subarray(0, bytesRead), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 1 << 20 }).toString('utf8');
    return text.split('\n', 1)[0];
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}
