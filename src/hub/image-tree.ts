import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { chmod, link, mkdir, open, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import type { RootEntry } from '../compilers/types.js';
import { failedPrecondition, type UnikError } from '../model/errors.js';

// A container image's layers, applied in order into a fresh folder by this module alone (never
// by a general tar extractor). The folder holds only directories and regular files (hard links
// between them included), written by us with owner-only bits and no setuid: symlinks, owners
// and the real modes live in a map beside it and become the app root's entries. So nothing in
// the folder points anywhere, and nothing a layer says can make us write through a link: every
// parent of a path is checked in the map to be a directory we made. Whiteouts (.wh.NAME) and
// opaque directories (.wh..wh..opq) hide what lower layers wrote, as the OCI spec says; devices
// and fifos are skipped with a note (the guest has devtmpfs).

const KiB = 1024;
const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

export interface Node {
  type: 'dir' | 'file' | 'symlink';
  /** the mode the guest sees (permission bits with setuid, setgid, sticky) */
  mode: number;
  uid: number;
  gid: number;
  /** symlinks: the target as the layer gave it (a guest path, never followed here) */
  target?: string;
}

/** What the whole import may still spend. */
export interface TreeBudget {
  bytesLeft: number;
  entriesLeft: number;
}

/** The refusal for anything a container image got wrong. */
export function badContainerImage(where: string, problem: string, code = 'BAD_IMAGE'): UnikError {
  return failedPrecondition(code, `${where}: ${problem}`, 'unik refused the image and stored nothing');
}

const show = (s: string) => JSON.stringify(s.slice(0, 160));

/** A tar name, canonicalised: "" for the root, "a/b" otherwise; refuses absolute and ".." names. */
export function layerPath(raw: string, where: string): string {
  if (raw.includes('\0') || raw.length > 4096) throw badContainerImage(where, `has an entry with a NUL in its name or a name over 4096 bytes: ${show(raw)}`);
  if (raw.startsWith('/')) throw badContainerImage(where, `has an entry with an absolute name: ${show(raw)}`);
  let p = raw;
  while (p.startsWith('./')) p = p.slice(2);
  p = p.replace(/\/+$/, '');
  if (p === '' || p === '.') return '';
  if (p.split('/').some((s) => s === '' || s === '.' || s === '..' || Buffer.byteLength(s) > 255)) throw badContainerImage(where, `has an entry whose name is not a plain path inside the image: ${show(raw)}`);
  return p;
}

const parentOf = (p: string) => {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
};
const baseOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);
const under = (p: string, dir: string) => (dir === '' ? p !== '' : p.startsWith(dir + '/'));

/** One layer's own writes: whiteouts in it hide only what lower layers wrote. */
interface LayerState {
  written: Set<string>;
  where: string;
  /** files being written: closed at once when the layer is refused, so the queue can end */
  outs: Set<{ destroy(e?: Error): unknown }>;
}

export class ImageTree {
  readonly nodes = new Map<string, Node>([['', { type: 'dir', mode: 0o755, uid: 0, gid: 0 }]]);
  /** kinds of entries skipped (devices, fifos, aufs metadata), with a count each */
  readonly skipped = new Map<string, number>();

  constructor(
    /** the folder the files go to; empty, and ours */
    readonly dir: string,
    private readonly budget: TreeBudget,
  ) {}

  private host(p: string): string {
    return p === '' ? this.dir : join(this.dir, p);
  }

  private skip(what: string): void {
    this.skipped.set(what, (this.skipped.get(what) ?? 0) + 1);
  }

  /**
   * Applies one layer (a tar, gzip'd or not; the compression is told by its first bytes). With
   * `diffId`, the uncompressed tar must have that digest, as the image config says.
   */
  async applyLayer(file: string, where: string, diffId?: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const head = Buffer.alloc(4);
    const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
    const starts = (b: Buffer, magic: number[]) => magic.every((x, i) => b[i] === x);
    if (starts(head, ZSTD_MAGIC)) throw badContainerImage(where, 'is compressed with zstd, which unik cannot read yet', 'UNSUPPORTED_LAYER');
    const gz = starts(head, GZIP_MAGIC);
    const state: LayerState = { written: new Set(), where, outs: new Set() };
    const hash = createHash('sha256');
    let seen = 0;
    let inner = Buffer.alloc(0);
    let problem: Error | undefined;
    let queue: Promise<void> = Promise.resolve();
    const budget = this.budget;
    const counter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        seen += chunk.length;
        if (seen > budget.bytesLeft) return cb(badContainerImage(where, `unpacks to more than ${budget.bytesLeft} bytes, what is left of the import's cap: refused (a decompression bomb, or an image too large; see UNIK_MAX_IMAGE_UNPACKED_MB)`, 'IMAGE_TOO_LARGE'));
        if (inner.length < 4) {
          inner = Buffer.concat([inner, chunk.subarray(0, 4 - inner.length)]);
          // tar's parser would decompress a nested gzip/zstd on its own, past this counter
          if (inner.length >= 4 && (starts(inner, GZIP_MAGIC) || starts(inner, ZSTD_MAGIC))) return cb(badContainerImage(where, 'is compressed twice; a layer is one tar, compressed at most once'));
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    const refuse = (e: Error) => {
      problem ??= e;
      counter.destroy(problem);
    };
    // not strict, so that one known quirk can be read (below); every other warning refuses the layer
    const parser = new Parser({
      strict: false,
      maxMetaEntrySize: 1024 * KiB,
      onwarn: (code: string, message: string, data: unknown) => {
        const h = (data as { header?: { path?: string; type?: string; size?: number } } | undefined)?.header;
        const text = String(message);
        if (code === 'TAR_ENTRY_INVALID' && text === 'linkpath forbidden' && h?.path && isPodmanWhiteout(h)) {
          // containers/storage writes every whiteout of a layer after the first as a regular,
          // empty file that still carries a link name (GNU tar, Go and Python ignore it): the
          // whiteout is applied in its turn, as any other
          const whiteout = { path: h.path, type: 'File', mode: 0o644, uid: 0, gid: 0, resume() {} } as unknown as ReadEntry;
          queue = queue.then(async () => {
            if (problem) return;
            try {
              await this.applyEntry(whiteout, state);
            } catch (e) {
              refuse(e as Error);
            }
          });
          return;
        }
        refuse(badContainerImage(where, `is not a valid tar layer (${code}: ${text.slice(0, 200)}${h?.path ? `, at ${show(h.path)}` : ''})`));
      },
    });
    parser.on('ignoredEntry', (entry: ReadEntry) => refuse(badContainerImage(where, `has an entry unik cannot read (${entry.type}, ${show(entry.path)})`)));
    // entries are applied one at a time, in order; a file's body is read when its turn comes
    // (the parser waits for it), so a later entry always sees what the earlier ones did
    parser.on('entry', (entry: ReadEntry) => {
      queue = queue.then(async () => {
        if (problem) return void entry.resume();
        try {
          await this.applyEntry(entry, state);
        } catch (e) {
          entry.resume();
          refuse(e as Error);
        }
      });
    });
    try {
      const src = createReadStream(file);
      await (gz ? pipeline(src, createGunzip(), counter, parser as unknown as Writable) : pipeline(src, counter, parser as unknown as Writable));
      await queue;
    } catch (e) {
      // the first refusal wins over what it caused (a destroyed stream)
      problem ??= (e as UnikError).code?.startsWith?.('UNIK_ERR_') ? (e as Error) : badContainerImage(where, `is not a valid ${gz ? 'tar.gz' : 'tar'} layer (${(e as Error).message.slice(0, 200)})`);
      for (const out of state.outs) out.destroy();
      await queue.catch(() => undefined);
      throw problem;
    }
    if (problem) throw problem;
    budget.bytesLeft -= seen;
    const got = `sha256:${hash.digest('hex')}`;
    if (diffId && got !== diffId) throw badContainerImage(where, `unpacks to a tar of digest ${got}, but the image config says ${diffId}`, 'DIGEST_MISMATCH');
  }

  /** Walks to `dir` (a path in the map): every part must be a directory; missing parts are made when `make`. */
  private async walkDir(dir: string, make: boolean, state: LayerState, what: string): Promise<boolean> {
    if (dir === '') return true;
    let cur = '';
    for (const part of dir.split('/')) {
      cur = cur ? `${cur}/${part}` : part;
      const n = this.nodes.get(cur);
      if (n?.type === 'dir') continue;
      if (n?.type === 'symlink') throw badContainerImage(state.where, `${what} goes through ${show(cur)}, a symlink (to ${show(n.target ?? '')}); unik does not follow links inside layers`);
      if (n) throw badContainerImage(state.where, `${what} goes through ${show(cur)}, a file`);
      if (!make) return false;
      // a parent the layer did not list: made as docker does (root, 0755)
      await mkdir(this.host(cur), { mode: 0o700 });
      this.nodes.set(cur, { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
      state.written.add(cur);
    }
    return true;
  }

  /** Removes a path and all below it, from the map and the folder. */
  private async remove(p: string): Promise<void> {
    const n = this.nodes.get(p);
    if (!n || p === '') return;
    if (n.type === 'dir') for (const k of [...this.nodes.keys()]) if (under(k, p)) this.nodes.delete(k);
    this.nodes.delete(p);
    if (n.type !== 'symlink') await rm(this.host(p), { recursive: true, force: true });
  }

  private takeEntry(state: LayerState): void {
    if (--this.budget.entriesLeft < 0) throw badContainerImage(state.where, 'brings the image over its cap on entries (files, directories, links)', 'IMAGE_TOO_LARGE');
  }

  private async applyEntry(entry: ReadEntry, state: LayerState): Promise<void> {
    const { where } = state;
    const p = layerPath(entry.path, where);
    const name = baseOf(p);
    const parent = parentOf(p);
    const mode = (entry.mode ?? 0o644) & 0o7777;
    const owner = { uid: safeId(entry.uid), gid: safeId(entry.gid) };
    this.takeEntry(state);

    if (name.startsWith(WH)) {
      entry.resume();
      if (!(await this.walkDir(parent, false, state, `the whiteout ${show(p)}`))) return; // nothing there to hide
      if (name === OPAQUE) return this.opaque(parent, state);
      if (name.startsWith(`${WH}${WH}`)) return this.skip('aufs metadata (.wh..wh.*)');
      const victim = name.slice(WH.length);
      if (victim === '' || victim === '.' || victim === '..') throw badContainerImage(where, `has the whiteout ${show(p)}, which names no file of its directory`);
      const target = parent ? `${parent}/${victim}` : victim;
      // a layer's whiteout hides only lower layers' files, never its own
      if (!state.written.has(target)) await this.remove(target);
      return;
    }
    if (p === '') {
      entry.resume();
      if (entry.type === 'Directory') this.nodes.set('', { type: 'dir', mode: mode & 0o7777, ...owner });
      return;
    }
    switch (entry.type) {
      case 'Directory': {
        entry.resume();
        await this.walkDir(parent, true, state, show(p));
        const old = this.nodes.get(p);
        if (old && old.type !== 'dir') await this.remove(p);
        if (old?.type !== 'dir') await mkdir(this.host(p), { mode: 0o700 });
        await chmod(this.host(p), (mode & 0o777) | 0o700);
        this.nodes.set(p, { type: 'dir', mode, ...owner });
        state.written.add(p);
        return;
      }
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        await this.walkDir(parent, true, state, show(p));
        await this.remove(p);
        // O_EXCL|O_NOFOLLOW: a file we create ourselves, never through something left there
        const fh = await open(this.host(p), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        const out = fh.createWriteStream();
        state.outs.add(out);
        entry.pipe(out as unknown as Writable);
        await finished(out);
        state.outs.delete(out);
        await chmod(this.host(p), (mode & 0o777) | 0o600);
        this.nodes.set(p, { type: 'file', mode, ...owner });
        state.written.add(p);
        return;
      }
      case 'SymbolicLink': {
        entry.resume();
        const target = entry.linkpath ?? '';
        if (!target || target.includes('\0') || target.length > 4096) throw badContainerImage(where, `has the symlink ${show(p)} with an empty or malformed target`);
        await this.walkDir(parent, true, state, show(p));
        await this.remove(p);
        this.nodes.set(p, { type: 'symlink', mode: 0o777, ...owner, target });
        state.written.add(p);
        return;
      }
      case 'Link': {
        entry.resume();
        // a hard link names another entry of the image: the same canonical path rules, and it must be there
        const t = layerPath(entry.linkpath ?? '', `${where}, the hard link ${show(p)}`);
        const tn = t === '' ? undefined : this.nodes.get(t);
        if (!tn || tn.type === 'dir' || !(await this.walkDir(parentOf(t), false, state, `the hard link ${show(p)}`)))
          throw badContainerImage(where, `has the hard link ${show(p)} to ${show(entry.linkpath ?? '')}, which is not a file the image holds`);
        await this.walkDir(parent, true, state, show(p));
        if (t === p) return;
        await this.remove(p);
        if (tn.type === 'file') await link(this.host(t), this.host(p));
        this.nodes.set(p, { ...tn });
        state.written.add(p);
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO':
        entry.resume();
        this.skip(`${entry.type === 'FIFO' ? 'fifo' : 'device node'}`);
        return;
      default:
        throw badContainerImage(where, `has ${show(p)} of type ${entry.type}, which an image root cannot hold`);
    }
  }

  /** An opaque directory: what lower layers put in it is gone; this layer's own entries stay. */
  private async opaque(dir: string, state: LayerState): Promise<void> {
    const keep = new Set<string>();
    for (const w of state.written) for (let a = w; a !== '' && under(a, dir); a = parentOf(a)) keep.add(a);
    for (const k of [...this.nodes.keys()]) if (under(k, dir) && !keep.has(k) && this.nodes.has(k)) await this.remove(k);
  }

  /**
   * A path of the guest resolved in the map as the guest would (absolute symlinks from the
   * image's root, at most 40 links): the host path of the regular file it names, or undefined.
   */
  resolveFile(guestPath: string): string | undefined {
    const n = this.resolve(guestPath);
    return n && this.nodes.get(n)?.type === 'file' ? this.host(n) : undefined;
  }

  /** The map key a guest path leads to (links followed), or undefined when it leads nowhere. */
  resolve(guestPath: string): string | undefined {
    let todo = guestPath.split('/').filter((s) => s && s !== '.');
    const cur: string[] = [];
    let hops = 0;
    while (todo.length) {
      const part = todo.shift()!;
      if (part === '..') {
        cur.pop(); // the root's parent is the root
        continue;
      }
      const key = [...cur, part].join('/');
      const n = this.nodes.get(key);
      if (!n) return undefined;
      if (n.type === 'symlink') {
        if (++hops > 40) return undefined;
        const t = n.target!;
        if (t.startsWith('/')) cur.length = 0;
        todo = [...t.split('/').filter((s) => s && s !== '.'), ...todo];
        continue;
      }
      if (n.type === 'file' && todo.length) return undefined;
      cur.push(part);
    }
    return cur.join('/');
  }

  /** Makes a directory the guest needs (a WorkingDir the image lacks), as docker does; refused through links. */
  async ensureDir(guestPath: string, where: string): Promise<void> {
    const key = guestPath.split('/').filter(Boolean).join('/');
    if (key.split('/').some((s) => s === '.' || s === '..')) throw badContainerImage(where, `${show(guestPath)} is not a plain path`);
    await this.walkDir(key, true, { written: new Set(), where, outs: new Set() }, show(guestPath));
  }

  nodeAt(key: string): Node | undefined {
    return this.nodes.get(key);
  }

  /** The root as app-root entries: directories, files (the folder's), symlinks; owners and modes from the layers. */
  entries(): RootEntry[] {
    const out: RootEntry[] = [];
    for (const k of [...this.nodes.keys()].sort()) {
      if (k === '') continue;
      const n = this.nodes.get(k)!;
      const path = `/${k}`;
      const owner = { uid: n.uid, gid: n.gid };
      if (n.type === 'dir') out.push({ kind: 'dir', path, mode: n.mode, ...owner });
      else if (n.type === 'file') out.push({ kind: 'file', path, source: this.host(k), mode: n.mode, ...owner });
      else out.push({ kind: 'symlink', path, target: n.target!, ...owner });
    }
    return out;
  }

  /** "skipped 3 device nodes, 1 fifo" or "" */
  skippedNote(): string {
    return [...this.skipped].map(([what, n]) => `${n} ${what}${n > 1 && !what.includes('(') ? 's' : ''}`).join(', ');
  }
}

function safeId(v: number | undefined): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 2 ** 32 ? v : 0;
}

/** posix-normalised absolute guest path, "/" for nothing */
export function guestPath(p: string): string {
  return posix.normalize(`/${p}`).replace(/\/+$/, '') || '/';
}

/** An empty regular-file entry named `.wh.NAME`: a whiteout, whatever link name it carries. */
function isPodmanWhiteout(h: { path?: string; type?: string; size?: number }): boolean {
  const name = (h.path ?? '').replace(/\/+$/, '').split('/').pop() ?? '';
  return (h.type === 'File' || h.type === 'OldFile') && (h.size ?? 0) === 0 && name.startsWith(WH) && name !== WH;
}
