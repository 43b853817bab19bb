// Volumes in the CLI and client: --vol / --mountpoint parsing, create-volume checks, and
// VolumesApi against a tiny local HTTP server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { mkdtemp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { parseMountPoint, parseMountPoints, parseVolFlags } from '../../src/cli/parse.js';
import { buildRunRequest } from '../../src/cli/commands/instances.js';
import { inspectVolumeData, planAttach, planCreateVolume } from '../../src/cli/commands/volumes.js';
import { CliError } from '../../src/cli/errors.js';
import { volumeRow } from '../../src/cli/output.js';
import { UnikApiError, UnikClient } from '../../src/client/index.js';
import type { VolumeJson } from '../../src/api/types.js';
import { cli } from './cli-harness.js';
import { startServer, type Seen } from './recording-server.js';

describe('--vol', () => {
  it('maps mount point → volume, splitting on the first ":"', () => {
    assert.deepEqual(parseVolFlags(['data:/data', 'logs:/var/log/app']), { '/data': 'data', '/var/log/app': 'logs' });
    assert.deepEqual(parseVolFlags(['data:/mnt/a:b']), { '/mnt/a:b': 'data' });
    assert.deepEqual(parseVolFlags(['data:/data/']), { '/data': 'data' });
    assert.deepEqual(parseVolFlags([]), {});
  });

  it('goes into RunRequest.Mounts in the 2016 shape', () => {
    assert.deepEqual(buildRunRequest('app', { vol: ['data:/data', 'cfg:/etc/app'] }), {
      ImageName: 'app', Mounts: { '/data': 'data', '/etc/app': 'cfg' },
    });
    assert.deepEqual(buildRunRequest('app', { vol: [] }), { ImageName: 'app' });
  });

  it('rejects a missing ":", empty parts, relative or root mount points and duplicates', () => {
    const cases: [string[], RegExp][] = [
      [['data'], /invalid --vol "data": expected VOLUME:MOUNTPOINT/],
      [[':/data'], /expected VOLUME:MOUNTPOINT/],
      [['data:'], /expected VOLUME:MOUNTPOINT/],
      [['data:data'], /invalid --vol "data": a mount point must be an absolute path/],
      [['data:./data'], /absolute path/],
      [['/data:data'], /absolute path/], // MOUNTPOINT:VOLUME the wrong way round
      [['data:/'], /cannot be mounted at \//],
      [['data:/a b'], /spaces/],
      [['a:/data', 'b:/data'], /\/data already has volume a/],
      [['a:/data', 'a:/other'], /volume a is given twice/],
    ];
    for (const [values, message] of cases) {
      assert.throws(() => parseVolFlags(values), (err: unknown) => {
        assert.ok(err instanceof CliError, values.join(' '));
        assert.match(err.message, message);
        return true;
      });
    }
    assert.throws(() => buildRunRequest('app', { vol: ['data:relative'] }), CliError);
  });
});

describe('--mountpoint', () => {
  it('normalizes absolute paths and rejects the rest', () => {
    assert.deepEqual(parseMountPoints(['/data', '/logs/']), ['/data', '/logs']);
    assert.equal(parseMountPoint('//srv/./x', 'MOUNTPOINT'), '/srv/x');
    assert.throws(() => parseMountPoints(['data']), /invalid --mountpoint "data": a mount point must be an absolute path/);
    assert.throws(() => parseMountPoints(['/a,/b']), /cannot contain ","/);
    assert.throws(() => parseMountPoints(['/data', '/data/']), /--mountpoint \/data is given twice/);
  });
});

describe('create-volume arguments', () => {
  it('takes NAME SIZE_MB or the 2016 flags, type ext4 by default', () => {
    assert.deepEqual(planCreateVolume('data', '64', {}), { name: 'data', sizeMb: 64, type: 'ext4', raw: false });
    assert.deepEqual(planCreateVolume(undefined, undefined, { name: 'data', size: '10', type: 'fat', provider: 'qemu' }), {
      name: 'data', sizeMb: 10, type: 'fat', raw: false, provider: 'qemu',
    });
    assert.deepEqual(planCreateVolume('data', undefined, { data: './dir' }), { name: 'data', type: 'ext4', raw: false, data: './dir' });
    assert.deepEqual(planCreateVolume('disk', '100', { data: 'disk.img', raw: true, type: 'ext2' }), {
      name: 'disk', sizeMb: 100, type: 'ext2', raw: true, data: 'disk.img',
    });
    assert.deepEqual(planCreateVolume('data', '64', { size: '64' }).sizeMb, 64);
  });

  it('needs a name and SIZE_MB or --data; checks the size, type and --raw', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => planCreateVolume(undefined, undefined, { size: '64' }), /missing volume name/],
      [() => planCreateVolume('data', undefined, {}), /missing the size of volume data/],
      [() => planCreateVolume('data', '0', {}), /invalid SIZE_MB "0": expected a positive whole number/],
      [() => planCreateVolume('data', '1.5', {}), /invalid SIZE_MB/],
      [() => planCreateVolume('data', '-3', {}), /invalid SIZE_MB/],
      [() => planCreateVolume('data', undefined, { size: 'big' }), /invalid --size "big"/],
      [() => planCreateVolume('data', '64', { size: '32' }), /size \(SIZE_MB and --size\) is given twice/],
      [() => planCreateVolume('a', '64', { name: 'b' }), /volume name \(NAME and --name\) is given twice/],
      [() => planCreateVolume('data', '64', { type: 'xfs' }), /invalid --type "xfs": expected one of ext4, ext2, fat/],
      [() => planCreateVolume('data', '64', { raw: true }), /--raw needs --data FILE/],
    ];
    for (const [fn, message] of cases) assert.throws(fn, (err: unknown) => err instanceof CliError && message.test(err.message));
  });

  describe('--data', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'unik-vol-data-'));
      await mkdir(join(dir, 'app'));
      await writeFile(join(dir, 'app', 'hello.txt'), 'hello\n');
      await tar.c({ file: join(dir, 'plain.tar'), cwd: join(dir, 'app') }, ['.']);
      await tar.c({ file: join(dir, 'zipped.tgz'), cwd: join(dir, 'app'), gzip: true }, ['.']);
      await writeFile(join(dir, 'disk.img'), Buffer.alloc(4096, 0));
      await writeFile(join(dir, 'empty'), '');
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('takes a directory, a tar, a tar.gz, or with --raw an image file', async () => {
      assert.equal(await inspectVolumeData(join(dir, 'app'), false), 'directory');
      assert.equal(await inspectVolumeData(join(dir, 'plain.tar'), false), 'file');
      assert.equal(await inspectVolumeData(join(dir, 'zipped.tgz'), false), 'file');
      assert.equal(await inspectVolumeData(join(dir, 'disk.img'), true), 'file');
    });

    it('rejects a missing path, a non-archive without --raw, a directory with --raw, an empty file', async () => {
      await assert.rejects(inspectVolumeData(join(dir, 'nope'), false), /no such file or directory/);
      await assert.rejects(inspectVolumeData(join(dir, 'disk.img'), false), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.match(err.message, /is not a .tar or .tar.gz archive/);
        assert.match(err.hint ?? '', /--raw/);
        return true;
      });
      await assert.rejects(inspectVolumeData(join(dir, 'app'), true), /is a directory/);
      await assert.rejects(inspectVolumeData(join(dir, 'empty'), true), /is empty/);
    });
  });
});

describe('attach-volume arguments', () => {
  it('takes positionals or the 2016 flags and checks the mount point', () => {
    assert.deepEqual(planAttach('data', 'web', '/data/', {}), { volume: 'data', instance: 'web', mountPoint: '/data' });
    assert.deepEqual(planAttach(undefined, undefined, undefined, { volume: 'data', instance: 'web', mountPoint: '/data' }), {
      volume: 'data', instance: 'web', mountPoint: '/data',
    });
    assert.throws(() => planAttach('data', 'web', undefined, {}), /missing mount point/);
    assert.throws(() => planAttach('data', undefined, '/data', {}), /missing instance/);
    assert.throws(() => planAttach('data', 'web', 'data', {}), /invalid MOUNTPOINT "data": a mount point must be an absolute path/);
  });
});

const volume = (name: string, extra: Partial<VolumeJson> = {}): VolumeJson => ({
  Id: 'a'.repeat(64), Name: name, SizeMb: 64, Attachment: '', Infrastructure: 'QEMU', Created: new Date().toISOString(),
  SizeBytes: 64 * 1024 * 1024, Type: 'ext4', MountPoint: '', AttachedInstanceName: '', Error: '', ...extra,
});

describe('volume rows', () => {
  it('shows size in MB units, the attachment, and the status', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    const created = new Date(now - 120_000).toISOString();
    assert.deepEqual(volumeRow(volume('data', { Created: created }), now), [
      'data', 'aaaaaaaaaaaa', 'ext4', '64 MB', '-', '-', '2 minutes ago', 'ok',
    ]);
    const attached = volume('big', {
      Created: created, SizeMb: 1000, Attachment: 'b'.repeat(64), AttachedInstanceName: 'web', MountPoint: '/data',
      Error: 'disk file\nmissing',
    });
    assert.deepEqual(volumeRow(attached, now).slice(3), ['1.0 GB', 'web', '/data', '2 minutes ago', '! disk file missing']);
    assert.equal(volumeRow(volume('x', { AttachedInstanceName: '', Attachment: 'c'.repeat(64) }))[4], 'cccccccccccc');
  });
});


/** Parses a recorded multipart body with the platform's own FormData parser. */
async function formOf(s: Seen): Promise<FormData> {
  return new Response(new Uint8Array(s.body), { headers: { 'content-type': s.headers['content-type'] ?? '' } }).formData();
}

describe('VolumesApi', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let dir: string;
  before(async () => {
    srv = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'unik-vol-api-'));
    await mkdir(join(dir, 'app', 'sub'), { recursive: true });
    await writeFile(join(dir, 'app', 'hello.txt'), 'hello\n');
    await writeFile(join(dir, 'app', 'sub', 'x.json'), '{}');
    await tar.c({ file: join(dir, 'data.tar.gz'), cwd: join(dir, 'app'), gzip: true }, ['.']);
  });
  after(async () => {
    srv.server.closeAllConnections();
    srv.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a volume from a tarfile: multipart "tarfile", parameters in the query', async () => {
    srv.seen.length = 0;
    srv.reply(() => ({ status: 201, body: JSON.stringify(volume('data')) }));
    const client = new UnikClient(srv.url);
    const vol = await client.volumes.create({ name: 'data', sizeMb: 64, type: 'fat', dataPath: join(dir, 'data.tar.gz') });
    assert.equal(vol.Name, 'data');
    const req = srv.seen[0];
    assert.ok(req);
    assert.equal(req.method, 'POST');
    const url = new URL(req.url, srv.url);
    assert.equal(url.pathname, '/volumes/data');
    assert.deepEqual(Object.fromEntries(url.searchParams), { size: '64', type: 'fat', raw: 'false' });
    assert.match(req.headers['content-type'] ?? '', /^multipart\/form-data; boundary=/);
    const form = await formOf(req);
    assert.deepEqual([...form.keys()], ['tarfile']);
    const file = form.get('tarfile');
    assert.ok(file instanceof File);
    assert.equal(file.name, 'data.tar.gz');
    assert.equal(file.size, (await stat(join(dir, 'data.tar.gz'))).size);
  });

  it('creates an empty volume with no body, and a raw one with raw=true', async () => {
    srv.seen.length = 0;
    srv.reply(() => ({ status: 201, body: JSON.stringify(volume('v')) }));
    const client = new UnikClient(srv.url);
    await client.volumes.create({ name: 'empty one', sizeMb: 10 });
    await client.volumes.create({ name: 'disk', dataPath: join(dir, 'data.tar.gz'), raw: true, provider: 'qemu' });
    const [empty, raw] = srv.seen;
    assert.ok(empty && raw);
    assert.equal(empty.url, '/volumes/empty%20one?size=10&raw=false');
    assert.equal(empty.body.length, 0);
    assert.equal(empty.headers['content-type'], undefined);
    assert.equal(raw.url, '/volumes/disk?provider=qemu&raw=true');
    assert.ok((await formOf(raw)).get('tarfile') instanceof File);
  });

  it('lists, gets and deletes', async () => {
    srv.seen.length = 0;
    srv.reply((s) =>
      s.method === 'DELETE' ? { status: 204 } : { status: 200, body: JSON.stringify(s.url === '/volumes' ? [volume('a')] : volume('a')) },
    );
    const client = new UnikClient(srv.url);
    assert.equal((await client.volumes.all())[0]?.Name, 'a');
    assert.equal((await client.volumes.get('aaaa')).Name, 'a');
    await client.volumes.delete('a');
    await client.volumes.delete('b', true);
    assert.deepEqual(srv.seen.map((s) => `${s.method} ${s.url}`), [
      'GET /volumes', 'GET /volumes/aaaa', 'DELETE /volumes/a?force=false', 'DELETE /volumes/b?force=true',
    ]);
  });

  it('attaches with mount= and takes the 202 plain-text answer; detaches', async () => {
    srv.seen.length = 0;
    srv.reply((s) => ({ status: 202, body: s.url.startsWith('/volumes/data/') ? 'data' : 'other', type: 'text/plain' }));
    const client = new UnikClient(srv.url);
    assert.equal(await client.volumes.attach('data', 'web', '/data'), 'data');
    assert.equal(await client.volumes.detach('data'), 'data');
    assert.deepEqual(srv.seen.map((s) => `${s.method} ${s.url}`), [
      'POST /volumes/data/attach/web?mount=%2Fdata', 'POST /volumes/data/detach',
    ]);
  });

  it('turns a 409 JSON answer into UnikApiError, and a 200 for attach too', async () => {
    srv.reply(() => ({
      status: 409,
      body: JSON.stringify({ message: 'volume data is attached to web', code: 'UNIK_ERR_VOLUME_ATTACHED', hint: 'detach it or use --force' }),
    }));
    const client = new UnikClient(srv.url);
    await assert.rejects(client.volumes.delete('data'), (err: unknown) => {
      assert.ok(err instanceof UnikApiError);
      assert.equal(err.status, 409);
      assert.equal(err.code, 'UNIK_ERR_VOLUME_ATTACHED');
      assert.equal(err.hint, 'detach it or use --force');
      return true;
    });
    await assert.rejects(client.volumes.attach('data', 'web', '/data'), { name: 'UnikApiError', status: 409 });
    srv.reply(() => ({ status: 200, body: 'data', type: 'text/plain' }));
    await assert.rejects(client.volumes.detach('data'), { name: 'UnikApiError', status: 200 });
  });

  describe('through the CLI', () => {
    it('create-volume packs a directory and prints the row', async () => {
      srv.seen.length = 0;
      srv.reply(() => ({ status: 201, body: JSON.stringify(volume('data')) }));
      const r = await cli(['--host', srv.url, 'cv', 'data', '--data', join(dir, 'app')]);
      assert.equal(r.error, undefined);
      assert.match(r.out, /\[upload\] sending .*app \(.*\) to /);
      assert.match(r.out, /NAME\s+ID\s+TYPE\s+SIZE\s+ATTACHED\s+MOUNT\s+CREATED\s+STATUS\n/);
      assert.match(r.out, /data\s+aaaaaaaaaaaa\s+ext4\s+64 MB\s+-\s+-\s+.*ago\s+ok/);
      const req = srv.seen[0];
      assert.ok(req);
      assert.equal(req.url, '/volumes/data?type=ext4&raw=false');
      const file = (await formOf(req)).get('tarfile');
      assert.ok(file instanceof File);
      assert.match(file.name, /\.tar\.gz$/);
      const entries: string[] = [];
      const parser = new tar.Parser({ onReadEntry: (e) => { entries.push(e.path); e.resume(); } });
      parser.end(gunzipSync(Buffer.from(await file.arrayBuffer())));
      assert.ok(entries.includes('./hello.txt') && entries.includes('./sub/x.json'), entries.join(','));
    });

    it('checks arguments before any call', async () => {
      srv.seen.length = 0;
      for (const args of [
        ['create-volume', 'data'],
        ['create-volume', 'data', '0'],
        ['create-volume', 'data', '--data', join(dir, 'missing')],
        ['run', 'app', '--vol', 'data:relative'],
        ['run', 'app', '--vol', 'data'],
        ['attach-volume', 'data', 'web', 'data'],
        ['push', 'app', dir, '--mountpoint', 'data'],
      ]) {
        const r = await cli(['--host', srv.url, ...args]);
        assert.ok(r.error instanceof CliError, `${args.join(' ')}: ${String(r.error)}`);
      }
      assert.equal(srv.seen.length, 0);
    });

    it('delete-volume reports each item and fails at the end', async () => {
      srv.seen.length = 0;
      srv.reply((s) =>
        s.url.startsWith('/volumes/busy')
          ? { status: 409, body: JSON.stringify({ message: 'volume busy is attached to web', code: 'UNIK_ERR_VOLUME_ATTACHED' }) }
          : { status: 204 },
      );
      const r = await cli(['--host', srv.url, 'rmv', 'a', 'busy', '--volume', 'b']);
      assert.equal(r.out, 'a\nb\n');
      assert.equal(r.err, 'unik: busy: volume busy is attached to web\n');
      assert.equal(r.exitCode, 1);
      assert.deepEqual(srv.seen.map((s) => s.url), ['/volumes/a?force=false', '/volumes/busy?force=false', '/volumes/b?force=false']);
    });

    it('attach (2016 flags) and detach print the volume name', async () => {
      srv.seen.length = 0;
      srv.reply(() => ({ status: 202, body: 'data', type: 'text/plain' }));
      const a = await cli(['--host', srv.url, 'attach-volume', '--volume', 'data', '--instance', 'web', '--mountPoint', '/data']);
      const d = await cli(['--host', srv.url, 'dv', 'data']);
      assert.equal(a.out, 'data\n');
      assert.equal(d.out, 'data\n');
      assert.deepEqual(srv.seen.map((s) => s.url), ['/volumes/data/attach/web?mount=%2Fdata', '/volumes/data/detach']);
    });
  });
});
