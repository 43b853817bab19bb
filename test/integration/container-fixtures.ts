// Real container images for the tests and the bench, made here (no public registry is reachable):
// a Debian bookworm minbase root from debootstrap is the base layer (`podman import`), and per
// server a `podman build` adds a layer with its Debian package installed by apt (the postgres
// image a third with its entrypoint script). Each image is saved as a `docker-archive` tar
// (uncompressed layers) and an `oci` layout (gzip layers, as registries serve them), and pushed
// on demand into a local docker-registry. Both the debootstrap root and the images are cached
// under ~/.unik/test-cache/ by a hash of what makes them, so CI builds them once; a lock keeps
// concurrent test processes from building twice.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import lockfile from 'proper-lockfile';
import { list as tarList } from 'tar';
import { Registry } from './registry.js';

const run = promisify(execFile);

/** Bump when the way the root (BASE_VERSION) or the images are made changes: part of the cache keys. */
const BASE_VERSION = 1;
const IMAGES_VERSION = 2;
const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
const SECURITY = 'http://deb.debian.org/debian-security';
/** the apt sources inside the images: bookworm with its updates and security fixes */
const SOURCES_LIST = `deb ${MIRROR} ${SUITE} main\ndeb ${MIRROR} ${SUITE}-updates main\ndeb ${SECURITY} ${SUITE}-security main\n`;

export type FixtureName = 'nginx' | 'redis' | 'postgres';
export const FIXTURE_NAMES: readonly FixtureName[] = ['nginx', 'redis', 'postgres'];

/**
 * One probe of a server with its own client (curl's job done by fetch for nginx, redis-cli,
 * psql): true once it answers as it should. `timeoutMs` bounds the one attempt.
 */
export const FIXTURE_CLIENTS: Record<FixtureName, (port: number, timeoutMs?: number) => Promise<boolean>> = {
  nginx: async (port, timeoutMs = 2000) => {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(timeoutMs) });
    return r.status === 200 && (await r.text()).includes('Welcome to nginx');
  },
  redis: async (port, timeoutMs = 3000) => (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], { timeout: timeoutMs })).stdout.trim() === 'PONG',
  postgres: async (port, timeoutMs = 5000) =>
    (await run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-tAc', 'select 1'], { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '2' } })).stdout.trim() === '1',
};

/** The parts of the image config the tests check (as `podman image inspect` reports them). */
export interface FixtureConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, object>;
  StopSignal?: string;
  Volumes?: Record<string, object>;
}

export interface FixtureLayer {
  digest: string;
  mediaType: string;
  /** bytes of the (gzip) blob in the OCI layout */
  size: number;
  /** `.wh.NAME` entries: paths (inside the root) this layer deletes from the layers below */
  whiteouts: string[];
  /** the whiteouts written as regular entries with a link name (see layerWhiteouts): node-tar drops them */
  linkedWhiteouts: string[];
  /** directories holding `.wh..wh..opq`: their contents below are hidden */
  opaqueDirs: string[];
}

/** What the cache holds about one image. */
export interface FixtureMeta {
  name: FixtureName;
  /** the Debian package that makes the server */
  package: string;
  packageVersion: string;
  /** the tcp port the server listens on inside */
  port: number;
  /** the name in the build store and the docker-archive's RepoTags */
  tag: string;
  config: FixtureConfig;
  /** config digest: the same in the archive, the layout and the registry */
  configDigest: string;
  layers: FixtureLayer[];
  /** uncompressed size as podman reports it */
  sizeBytes: number;
  /** the manifest's config + layer blobs (gzip), what a pull transfers */
  compressedBytes: number;
}

export interface FixtureImage extends FixtureMeta {
  /** a `docker save`-style tar (uncompressed layers) */
  dockerArchive: string;
  /** an OCI image layout directory holding this one image, tagged `latest` */
  ociLayout: string;
  /** `host:port/unik-fixtures/NAME:latest` in the registry (empty when no registry was asked for) */
  ref: string;
}

export interface Fixtures {
  images: Record<FixtureName, FixtureImage>;
  /** the registry the refs point at (started by ensure() unless the caller gave one) */
  registry?: Registry;
  /** seconds the last fresh build took (base, images): the figure for CI's budget */
  buildSeconds: { base: number; images: number };
  /** stops the registry ensure() started (a caller's registry is left alone) */
  destroy(): Promise<void>;
}

interface ImageSpec {
  name: FixtureName;
  package: string;
  port: number;
  containerfile: string;
  /** extra files for the build context (name → [content, mode]) */
  files?: Record<string, [string, number]>;
}

/**
 * Shared by every package layer: no service starts while apt runs (a policy-rc.d made and
 * removed in the same step, so it is in no layer), no recommends, and apt's lists, caches and
 * logs removed afterwards. The logs and debconf's -old files exist in the base, so each image
 * has whiteouts.
 */
function aptInstall(pkg: string): string {
  return [
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d",
    'apt-get update -qq',
    `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${pkg} >/dev/null`,
    'apt-get clean',
    'rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/sbin/policy-rc.d /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log /var/cache/debconf/*-old',
  ].join('; \\\n    ');
}

/** initdb on the first start (an empty $PGDATA), then the server on every address; trust auth (a test image). */
const PG_ENTRYPOINT = `#!/bin/sh
set -eu
if [ "\${1:-}" = postgres ]; then
  shift
  mkdir -p "$PGDATA" /var/run/postgresql 2>/dev/null || :
  chmod 700 "$PGDATA" 2>/dev/null || :
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" --username=postgres --auth=trust
    printf 'host all all all trust\\n' >> "$PGDATA/pg_hba.conf"
  fi
  exec /usr/lib/postgresql/15/bin/postgres -D "$PGDATA" -c 'listen_addresses=*' "$@"
fi
exec "$@"
`;

const SPECS: ImageSpec[] = [
  {
    name: 'nginx',
    package: 'nginx-light',
    port: 80,
    // slimmed as images often are: man and info pages deleted (directory whiteouts), the docs
    // directory emptied by deleting and re-making it (an opaque directory on overlay), the base's
    // /etc/motd deleted (a file whiteout); logs to the container's output like the official image
    containerfile: `RUN set -eu; ${aptInstall('nginx-light')}; \\
    rm -rf /usr/share/man /usr/share/info /etc/motd; rm -rf /usr/share/doc; mkdir /usr/share/doc; \\
    ln -sf /dev/stdout /var/log/nginx/access.log; ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
`,
  },
  {
    name: 'redis',
    package: 'redis-server',
    port: 6379,
    // no config file: redis' built-in defaults (foreground, every address), data in WORKDIR
    containerfile: `RUN set -eu; ${aptInstall('redis-server')}
WORKDIR /var/lib/redis
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
`,
  },
  {
    name: 'postgres',
    package: 'postgresql-15',
    port: 5432,
    // like the official image: a data volume, a socket directory any user may use, SIGINT (fast shutdown)
    containerfile: `ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
RUN set -eu; ${aptInstall('postgresql-15')}; \\
    mkdir -p "$PGDATA" /var/run/postgresql; chown postgres:postgres "$PGDATA" /var/run/postgresql; \\
    chmod 700 "$PGDATA"; chmod 3777 /var/run/postgresql
COPY docker-entrypoint.sh /usr/local/bin/
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
`,
    files: { 'docker-entrypoint.sh': [PG_ENTRYPOINT, 0o755] },
  },
];

type Log = (msg: string) => void;

export function cacheRoot(): string {
  return process.env.UNIK_TEST_CACHE || join(homedir(), '.unik', 'test-cache');
}

function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}

const BASE_KEY = hash({ SCRIPT_VERSION: BASE_VERSION, SUITE, MIRROR, variant: 'minbase', components: ['main'], SOURCES_LIST });
const IMAGES_KEY = hash({ IMAGES_VERSION, BASE_KEY, SPECS });

function baseDir(): string {
  return join(cacheRoot(), `debian-${SUITE}-minbase-${BASE_KEY}`);
}
function imagesDir(): string {
  return join(cacheRoot(), `container-fixtures-${IMAGES_KEY}`);
}

async function lock(log: Log): Promise<() => Promise<void>> {
  await mkdir(cacheRoot(), { recursive: true });
  const path = join(cacheRoot(), 'container-fixtures');
  const opts = { realpath: false, stale: 30_000, update: 5_000 };
  try {
    return await lockfile.lock(path, { ...opts, retries: 0 });
  } catch {
    log('another process is building the container fixtures: waiting for it');
    // a fresh build takes minutes; wait up to 30
    return lockfile.lock(path, { ...opts, retries: { retries: 1800, minTimeout: 1000, maxTimeout: 1000 } });
  }
}

/** rm -rf that never crosses into a mounted filesystem (debootstrap mounts /proc in its target). */
async function removeTree(dir: string): Promise<void> {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n').reverse()) {
    const mnt = line.split(' ')[1];
    if (mnt && (mnt === dir || mnt.startsWith(dir + '/'))) await run('umount', ['-l', mnt]).catch(() => undefined);
  }
  await run('rm', ['-rf', '--one-file-system', dir]);
}

function tail(s: string, n = 2000): string {
  return s.length > n ? '…' + s.slice(-n) : s;
}

async function need(cmd: string, pkg: string): Promise<void> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
  } catch {
    throw new Error(`${cmd} is missing: install the Debian package ${pkg} (scripts/setup.sh does)`);
  }
}

/** The debootstrap root as a tar, made once per key. Caller holds the lock. */
async function ensureBase(log: Log): Promise<{ tar: string; seconds: number }> {
  const dir = baseDir();
  const tar = join(dir, 'rootfs.tar');
  if (existsSync(join(dir, 'done'))) return { tar, seconds: JSON.parse(await readFile(join(dir, 'done'), 'utf8')).seconds };
  await need('debootstrap', 'debootstrap');
  if (process.getuid?.() !== 0) throw new Error('debootstrap needs root');
  const t0 = performance.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  await removeTree(tmp);
  const root = join(tmp, 'root');
  await mkdir(root, { recursive: true });
  log(`debootstrap --variant=minbase ${SUITE} (a fresh machine takes about a minute)`);
  try {
    await run('debootstrap', ['--variant=minbase', '--components=main', SUITE, root, MIRROR], { maxBuffer: 64 << 20 });
    // what a container base must not carry: the build host's resolver and name, device nodes
    // (the runtime makes /dev), downloaded .debs and apt lists (stale the day after), the bootstrap log
    await run('sh', [
      '-c',
      'set -eu; cd "$1"; find dev -mindepth 1 -delete; : > etc/resolv.conf; echo localhost > etc/hostname; ' +
        'rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* var/log/bootstrap.log; ' +
        'mkdir -p var/lib/apt/lists/partial',
      'sh',
      root,
    ]);
    await writeFile(join(root, 'etc/apt/sources.list'), SOURCES_LIST);
    await run('tar', ['-C', root, '--numeric-owner', '--xattrs', '-cf', join(tmp, 'rootfs.tar'), '.']);
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    let dlog = '';
    try {
      dlog = await readFile(join(root, 'debootstrap/debootstrap.log'), 'utf8');
    } catch {
      /* none */
    }
    await removeTree(tmp);
    throw new Error(`debootstrap failed: ${tail(err.stderr || err.message)}\n${tail(dlog)}`);
  }
  await removeTree(root);
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  await writeFile(join(tmp, 'done'), JSON.stringify({ seconds, suite: SUITE, mirror: MIRROR, key: BASE_KEY }) + '\n');
  await rename(tmp, dir);
  log(`base root made in ${seconds} s`);
  return { tar, seconds };
}

/** A podman with its own storage and config (this sandbox needs explicit ulimits and runc). */
export class PodmanStore {
  readonly env: NodeJS.ProcessEnv;
  private readonly storage: string[];

  constructor(readonly dir: string) {
    this.env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') };
    this.storage = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot')];
  }

  static async create(prefix: string): Promise<PodmanStore> {
    const s = new PodmanStore(await mkdtemp(join(tmpdir(), prefix)));
    await writeFile(join(s.dir, 'containers.conf'), '[containers]\ndefault_ulimits=["nofile=1024:1024","nproc=1024:1024"]\n[engine]\nruntime="runc"\n');
    await writeFile(join(s.dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    return s;
  }

  /** the skopeo/containers-image name of an image in this store */
  storageRef(name: string): string {
    return `containers-storage:[overlay@${join(this.dir, 'root')}+${join(this.dir, 'runroot')}]${name}`;
  }

  /** argv for spawning podman yourself (timing a `run -d`) */
  argv(args: string[]): string[] {
    return [...this.storage, ...args];
  }

  async podman(args: string[], timeoutMs = 20 * 60_000): Promise<string> {
    try {
      const r = await run('podman', this.argv(args), { env: this.env, maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: 'SIGKILL' });
      return r.stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`podman ${args.slice(0, 2).join(' ')} failed: ${tail(err.stderr || err.stdout || err.message)}`);
    }
  }

  async destroy(): Promise<void> {
    await this.podman(['rm', '-af', '-t', '0']).catch(() => undefined);
    await this.podman(['rmi', '-af']).catch(() => undefined);
    await this.podman(['volume', 'prune', '-f']).catch(() => undefined);
    await removeTree(this.dir);
  }
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (alg !== 'sha256' || !/^[0-9a-f]{64}$/.test(hex ?? '')) throw new Error(`bad digest ${digest}`);
  return join(layout, 'blobs', 'sha256', hex!);
}

/** The one manifest of a layout made by `podman push … oci:DIR:latest`. */
export async function readOciManifest(layout: string): Promise<{ config: OciDescriptor; layers: OciDescriptor[] }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  if (index.manifests.length !== 1) throw new Error(`${layout}: expected one manifest, found ${index.manifests.length}`);
  return JSON.parse(await readFile(blobPath(layout, index.manifests[0]!.digest), 'utf8'));
}

/**
 * Whiteouts and opaque directories of one layer tar (gzip or not). containers/storage writes
 * every whiteout after a layer's first as a regular-file entry that also carries a link name
 * (overlayfs shares one inode among whiteouts, and the hard-link bookkeeping leaves the name set
 * when the entry is turned into a `.wh.` file); GNU tar and Go read those as plain files, but
 * node-tar's Parser drops them with a `TAR_ENTRY_INVALID linkpath forbidden` warning, so they
 * are picked up from the warning here and listed apart in `linkedWhiteouts`.
 */
export async function layerWhiteouts(file: string): Promise<{ whiteouts: string[]; linkedWhiteouts: string[]; opaqueDirs: string[]; entries: number }> {
  const whiteouts: string[] = [];
  const linkedWhiteouts: string[] = [];
  const opaqueDirs: string[] = [];
  let entries = 0;
  const see = (path: string, linked: boolean) => {
    entries++;
    const p = '/' + path.replace(/^\.?\//, '');
    const slash = p.lastIndexOf('/');
    const dir = p.slice(0, slash) || '/';
    const base = p.slice(slash + 1);
    if (base === '.wh..wh..opq') opaqueDirs.push(dir);
    else if (base.startsWith('.wh.')) {
      const target = (dir === '/' ? '' : dir) + '/' + base.slice(4);
      whiteouts.push(target);
      if (linked) linkedWhiteouts.push(target);
    }
  };
  await tarList({
    file,
    onReadEntry: (e) => see(e.path, false),
    onwarn: (code, _msg, data) => {
      const h = (data as { header?: { path?: string; type?: string; size?: number } }).header;
      if (code === 'TAR_ENTRY_INVALID' && h?.path && h.type === 'File' && !h.size) see(h.path, true);
    },
  });
  return { whiteouts, linkedWhiteouts, opaqueDirs, entries };
}

/** Builds the three images from the base tar into `out`. Caller holds the lock. */
async function buildImages(baseTar: string, out: string, log: Log): Promise<Record<FixtureName, FixtureMeta>> {
  const store = await PodmanStore.create('unik-fixtures-build-');
  const metas = {} as Record<FixtureName, FixtureMeta>;
  try {
    const base = `localhost/unik-fixtures/debian-base:${BASE_KEY}`;
    await store.podman(['import', baseTar, base]);
    for (const spec of SPECS) {
      const t0 = performance.now();
      const tag = `localhost/unik-fixtures/${spec.name}:latest`;
      const ctx = join(store.dir, `ctx-${spec.name}`);
      await mkdir(ctx);
      await writeFile(join(ctx, 'Containerfile'), `FROM ${base}\n${spec.containerfile}`);
      for (const [f, [text, mode]] of Object.entries(spec.files ?? {})) {
        await writeFile(join(ctx, f), text);
        await chmod(join(ctx, f), mode);
      }
      log(`podman build ${spec.name} (apt-get install ${spec.package})`);
      // apt inside reaches deb.debian.org through the host's network
      await store.podman(['build', '--network', 'host', '--pull=never', '-t', tag, '-f', join(ctx, 'Containerfile'), ctx]);
      const dir = join(out, spec.name);
      await mkdir(dir);
      await store.podman(['save', '--format', 'docker-archive', '-o', join(dir, 'docker-archive.tar'), tag]);
      await store.podman(['push', '--compression-format', 'gzip', tag, `oci:${join(dir, 'oci')}:latest`]);
      const inspect = JSON.parse(await store.podman(['image', 'inspect', tag]))[0] as { Config: Record<string, unknown>; Size: number };
      const packageVersion = (await store.podman(['run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', tag, '-W', '-f', '${Version}', spec.package])).trim();
      const manifest = await readOciManifest(join(dir, 'oci'));
      const layers: FixtureLayer[] = [];
      for (const l of manifest.layers) {
        const { whiteouts, linkedWhiteouts, opaqueDirs } = await layerWhiteouts(blobPath(join(dir, 'oci'), l.digest));
        layers.push({ digest: l.digest, mediaType: l.mediaType, size: l.size, whiteouts, linkedWhiteouts, opaqueDirs });
      }
      const c = inspect.Config;
      const config: FixtureConfig = {};
      for (const k of ['Entrypoint', 'Cmd', 'User', 'Env', 'WorkingDir', 'ExposedPorts', 'StopSignal', 'Volumes'] as const)
        if (c[k] !== undefined && c[k] !== '' && c[k] !== null) (config as Record<string, unknown>)[k] = c[k];
      const meta: FixtureMeta = {
        name: spec.name,
        package: spec.package,
        packageVersion,
        port: spec.port,
        tag,
        config,
        configDigest: manifest.config.digest,
        layers,
        sizeBytes: inspect.Size,
        compressedBytes: manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0),
      };
      await writeFile(join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
      metas[spec.name] = meta;
      log(`${spec.name}: ${spec.package} ${packageVersion}, ${layers.length} layers, ${(meta.sizeBytes / 1e6).toFixed(1)} MB, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await store.destroy();
  }
  return metas;
}

interface ImagesRecord {
  key: string;
  seconds: number;
  baseSeconds: number;
  images: Record<FixtureName, FixtureMeta>;
}

/** The images on disk (built when missing); no registry. */
export async function build(log: Log = () => undefined): Promise<ImagesRecord & { dir: string }> {
  const dir = imagesDir();
  const record = join(dir, 'fixtures.json');
  if (existsSync(record)) return { ...(JSON.parse(await readFile(record, 'utf8')) as ImagesRecord), dir };
  const release = await lock(log);
  try {
    if (existsSync(record)) return { ...(JSON.parse(await readFile(record, 'utf8')) as ImagesRecord), dir };
    await need('podman', 'podman');
    const base = await ensureBase(log);
    const t0 = performance.now();
    const tmp = `${dir}.tmp-${process.pid}`;
    await removeTree(tmp);
    await mkdir(tmp, { recursive: true });
    let images: Record<FixtureName, FixtureMeta>;
    try {
      images = await buildImages(base.tar, tmp, log);
    } catch (e) {
      await removeTree(tmp);
      throw e;
    }
    const rec: ImagesRecord = { key: IMAGES_KEY, seconds: Math.round((performance.now() - t0) / 100) / 10, baseSeconds: base.seconds, images };
    await writeFile(join(tmp, 'fixtures.json'), JSON.stringify(rec, null, 2) + '\n');
    await rename(tmp, dir);
    return { ...rec, dir };
  } finally {
    await release();
  }
}

export interface EnsureOptions {
  /** push into this registry (the caller's, left running); default: a fresh one ensure() starts; false: none */
  registry?: Registry | false;
  /** `user:password` for a registry with auth */
  creds?: string;
  /** the repository prefix in the registry */
  repo?: string;
  log?: Log;
}

/**
 * The fixture images, built if the cache lacks them, pushed into a local docker-registry:
 * per server its registry ref, docker-archive tar, OCI layout and what its config says.
 */
export async function ensure(opts: EnsureOptions = {}): Promise<Fixtures> {
  const log = opts.log ?? (() => undefined);
  const rec = await build(log);
  let registry: Registry | undefined;
  let owned = false;
  if (opts.registry !== false) {
    registry = opts.registry;
    if (!registry) {
      registry = new Registry();
      await registry.start();
      owned = true;
    }
  }
  const images = {} as Record<FixtureName, FixtureImage>;
  try {
    for (const name of FIXTURE_NAMES) {
      const meta = rec.images[name];
      const dir = join(rec.dir, name);
      let ref = '';
      if (registry) {
        ref = `${registry.host}/${opts.repo ?? 'unik-fixtures'}/${name}:latest`;
        const creds = opts.creds ? ['--dest-creds', opts.creds] : [];
        // the layout's gzip blobs go up as they are: the registry holds the same digests
        await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', ...creds, `oci:${join(dir, 'oci')}:latest`, `docker://${ref}`], { maxBuffer: 16 << 20 });
      }
      images[name] = { ...meta, dockerArchive: join(dir, 'docker-archive.tar'), ociLayout: join(dir, 'oci'), ref };
    }
  } catch (e) {
    if (owned) await registry?.destroy();
    throw e;
  }
  return {
    images,
    ...(registry ? { registry } : {}),
    buildSeconds: { base: rec.baseSeconds, images: rec.seconds },
    destroy: async () => {
      if (owned) await registry?.destroy();
    },
  };
}

export const fixtures = { ensure, build, cacheRoot };

// `node dist/test/integration/container-fixtures.js`: build (or find) the images, print what is there
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = performance.now();
  const rec = await build((m) => console.error(`fixtures: ${m}`));
  console.log(JSON.stringify({ dir: rec.dir, baseSeconds: rec.baseSeconds, imagesSeconds: rec.seconds, wallSeconds: Math.round((performance.now() - t0) / 100) / 10, images: rec.images }, null, 2));
}
