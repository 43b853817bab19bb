// CLI and client parts that need no daemon: flag parsing, target resolution, formatting,
// and the client's error mapping against a tiny local HTTP server.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { parseEnvFlags, parsePortFlag, parseVolFlags, splitCompilerName } from '../../src/cli/parse.js';
import { buildRunRequest } from '../../src/cli/commands/instances.js';
import { formatClientConfig, parseClientConfig, resolveTarget, targetUrl, withPort } from '../../src/cli/target.js';
import { formatPort, humanSize, reachableUrl, relativeTime, renderTable } from '../../src/cli/output.js';
import { ProgressPrinter } from '../../src/cli/progress.js';
import { CliError, reportError } from '../../src/cli/errors.js';
import { buildProgram } from '../../src/cli/program.js';
import { DaemonUnreachableError, UnikApiError, UnikClient } from '../../src/client/client.js';
import { packDirectory, PackError } from '../../src/client/tarball.js';
import type { BuildProgress } from '../../src/client/client.js';
import type { ImageJson, PortMapping } from '../../src/api/types.js';

describe('parsePortFlag', () => {
  it('accepts HOST:GUEST, IP:HOST:GUEST, [v6]:HOST:GUEST and a protocol', () => {
    assert.deepEqual(parsePortFlag('18080:8080'), { hostPort: 18080, guestPort: 8080, protocol: 'tcp', spec: '18080:8080' });
    assert.deepEqual(parsePortFlag('127.0.0.1:18080:8080'), {
      hostIp: '127.0.0.1', hostPort: 18080, guestPort: 8080, protocol: 'tcp', spec: '127.0.0.1:18080:8080',
    });
    assert.equal(parsePortFlag('[::1]:53:53/udp').hostIp, '::1');
    assert.equal(parsePortFlag('[::1]:53:53/udp').protocol, 'udp');
  });

  it('rejects a bare port, out-of-range ports and junk', () => {
    for (const bad of ['80', '0:80', '70000:80', 'a:b', '1.2.3.4:8080', '1:2:3:4', ':80', '80:']) {
      assert.throws(() => parsePortFlag(bad), CliError, bad);
    }
  });
});

describe('parseEnvFlags', () => {
  it('splits on the first "=" only', () => {
    assert.deepEqual(parseEnvFlags(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
  });
  it('rejects a value without "=" or with an empty key', () => {
    assert.throws(() => parseEnvFlags(['NOEQ']), /invalid --env "NOEQ": expected KEY=VALUE/);
    assert.throws(() => parseEnvFlags(['=v']), CliError);
  });
});

describe('run request', () => {
  it('sends ports as given and the 2016 spellings', () => {
    const req = buildRunRequest(undefined, {
      imageName: 'app', instanceName: 'web', instanceMemory: '128',
      port: ['127.0.0.1:18080:8080'], env: ['K=V'], vol: ['data:/data'],
    });
    assert.deepEqual(req, {
      ImageName: 'app', InstanceName: 'web', MemoryMb: 128,
      Ports: ['127.0.0.1:18080:8080'], Env: { K: 'V' }, Mounts: { '/data': 'data' },
    });
  });
  it('treats memory 0 as the image default and checks flags before any call', () => {
    assert.deepEqual(buildRunRequest('app', { memory: '0' }), { ImageName: 'app' });
    assert.throws(() => buildRunRequest('app', { env: ['oops'] }), CliError);
    assert.throws(() => buildRunRequest(undefined, {}), /missing image/);
    assert.throws(() => buildRunRequest('app', { memory: 'lots' }), /--memory/);
  });
  it('parses --vol and compiler names', () => {
    assert.throws(() => parseVolFlags(['novolume']), CliError);
    assert.deepEqual(splitCompilerName('linux-oci-image-qemu'), { base: 'linux', lang: 'oci-image', provider: 'qemu' });
    assert.equal(splitCompilerName('go'), undefined);
  });
});

describe('target resolution', () => {
  let home: string;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'unik-cli-test-'));
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('goes --host > UNIK_HOST > client-config.yaml > default', async () => {
    const env: Record<string, string | undefined> = { UNIK_HOME: home };
    assert.deepEqual(resolveTarget({ env }), {
      address: '127.0.0.1:3000', source: 'default', configPath: join(home, 'client-config.yaml'),
    });
    await writeFile(join(home, 'client-config.yaml'), formatClientConfig('10.0.0.2:3000'));
    assert.equal(resolveTarget({ env }).address, '10.0.0.2:3000');
    assert.equal(resolveTarget({ env }).source, 'config');
    env.UNIK_HOST = '10.0.0.3:4000';
    assert.equal(resolveTarget({ env }).address, '10.0.0.3:4000');
    assert.equal(resolveTarget({ env, flag: '10.0.0.4:5000' }).address, '10.0.0.4:5000');
    assert.equal(resolveTarget({ env, flag: '10.0.0.4:5000' }).source, 'flag');
  });

  it('fails clearly on a config without a host line', async () => {
    const configPath = join(home, 'broken.yaml');
    await writeFile(configPath, 'hots: nope\n');
    assert.throws(() => resolveTarget({ env: {}, configPath }), /has no "host:" line/);
  });

  it('reads the 2016 one-line format, quoted or not', () => {
    assert.equal(parseClientConfig('host: "127.0.0.1:3000"\n'), '127.0.0.1:3000');
    assert.equal(parseClientConfig("host: '1.2.3.4:3000'"), '1.2.3.4:3000');
    assert.equal(parseClientConfig('# unik\nhost: example.com:3000  # lab\n'), 'example.com:3000');
    assert.equal(parseClientConfig('port: 3000\n'), undefined);
    assert.equal(formatClientConfig('h:1'), 'host: "h:1"\n');
  });

  it('adds the scheme and default port', () => {
    assert.equal(targetUrl('10.0.0.5'), 'http://10.0.0.5:3000');
    assert.equal(targetUrl('10.0.0.5:4000'), 'http://10.0.0.5:4000');
    assert.equal(targetUrl('https://unik.example/'), 'https://unik.example');
    assert.equal(withPort('::1', 3000), '[::1]:3000');
    assert.equal(withPort('[::1]:4000', 3000), '[::1]:4000');
  });

  it('"unik target" writes $UNIK_HOME/client-config.yaml', async () => {
    const saved = process.env.UNIK_HOME;
    const savedHost = process.env.UNIK_HOST;
    const dir = join(home, 'nested', 'home');
    process.env.UNIK_HOME = dir;
    delete process.env.UNIK_HOST;
    const write = process.stdout.write;
    process.stdout.write = () => true; // keep the test output clean
    try {
      await buildProgram().parseAsync(['node', 'unik', 'target', '--host', '10.1.2.3', '--port', '4000']);
    } finally {
      process.stdout.write = write;
      if (saved === undefined) delete process.env.UNIK_HOME;
      else process.env.UNIK_HOME = saved;
      if (savedHost !== undefined) process.env.UNIK_HOST = savedHost;
    }
    assert.equal(await readFile(join(dir, 'client-config.yaml'), 'utf8'), 'host: "10.1.2.3:4000"\n');
  });
});

describe('output', () => {
  it('formats sizes in decimal units', () => {
    assert.equal(humanSize(0), '0 B');
    assert.equal(humanSize(512), '512 B');
    assert.equal(humanSize(4_600_000), '4.6 MB');
    assert.equal(humanSize(46_300_000), '46 MB');
    assert.equal(humanSize(999_600), '1.0 MB');
    assert.equal(humanSize(1_234_000_000), '1.2 GB');
  });

  it('formats times like docker', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    const ago = (ms: number) => relativeTime(new Date(now - ms).toISOString(), now);
    assert.equal(ago(300), 'Less than a second ago');
    assert.equal(ago(1_000), '1 second ago');
    assert.equal(ago(45_000), '45 seconds ago');
    assert.equal(ago(90_000), 'About a minute ago');
    assert.equal(ago(2 * 60_000), '2 minutes ago');
    assert.equal(ago(60 * 60_000), 'About an hour ago');
    assert.equal(ago(5 * 3_600_000), '5 hours ago');
    assert.equal(ago(3 * 86_400_000), '3 days ago');
    assert.equal(ago(-5_000), 'Less than a second ago');
    assert.equal(relativeTime('not a date', now), 'not a date');
  });

  it('renders borderless tables', () => {
    const text = renderTable(['NAME', 'ID'], [['web', 'abc'], ['a-longer-name', 'def']]);
    assert.equal(text, ['NAME            ID', 'web             abc', 'a-longer-name   def'].join('\n'));
  });

  it('formats ports and their URLs', () => {
    const p: PortMapping = { HostIp: '127.0.0.1', HostPort: 18080, GuestPort: 8080, Protocol: 'tcp' };
    assert.equal(formatPort(p), '127.0.0.1:18080->8080/tcp');
    assert.equal(reachableUrl(p, '127.0.0.1'), 'http://127.0.0.1:18080');
    assert.equal(reachableUrl({ ...p, HostIp: '0.0.0.0' }, 'unik.lab'), 'http://unik.lab:18080');
    assert.equal(reachableUrl({ ...p, HostIp: '' }, 'localhost'), 'http://127.0.0.1:18080');
  });
});

describe('progress', () => {
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY, columns: 80, write: (s: string) => chunks.push(s) } };
  };

  it('logs one line per event, at most every 5 percent, off a terminal', () => {
    const { chunks, stream } = sink(false);
    const p = new ProgressPrinter(stream);
    p.event({ Step: 'compile', Message: 'go build' });
    for (let pct = 0; pct <= 100; pct++) p.event({ Step: 'kernel', Message: 'building', Percent: pct });
    p.finish();
    assert.equal(chunks[0], '[compile] go build\n');
    const kernel = chunks.slice(1);
    assert.equal(kernel.length, 21); // 0, 5, ..., 100
    assert.equal(kernel[1], '[kernel] building 5%\n');
    assert.equal(kernel.at(-1), '[kernel] building 100%\n');
  });

  it('redraws one line on a terminal', () => {
    const { chunks, stream } = sink(true);
    const p = new ProgressPrinter(stream);
    p.event({ Step: 'kernel', Message: 'building', Percent: 10 });
    p.event({ Step: 'kernel', Message: 'building', Percent: 11 });
    p.event({ Step: 'store', Message: 'storing' });
    assert.deepEqual(chunks, ['\r[kernel] building 10%\x1b[K', '\r[kernel] building 11%\x1b[K', '\n', '[store] storing\n']);
  });
});

describe('reportError', () => {
  const capture = () => {
    let text = '';
    return { get text() { return text; }, write: (s: string) => { text += s; } };
  };
  it('prints message and hint for API errors, exit 1', () => {
    const err = capture();
    const code = reportError(new UnikApiError(404, { message: 'no such image: x', code: 'UNIK_ERR_NOT_FOUND', hint: 'see unik images' }), err);
    assert.equal(code, 1);
    assert.equal(err.text, 'unik: no such image: x\nhint: see unik images\n');
  });
  it('prints one line for an unreachable daemon, and the stack for bugs (exit 2)', () => {
    const err = capture();
    assert.equal(reportError(new DaemonUnreachableError('http://h:1', 'connection refused'), err), 1);
    assert.equal(err.text.split('\n').length, 2);
    const bug = capture();
    assert.equal(reportError(new Error('boom'), bug), 2);
    assert.match(bug.text, /boom\n\s+at /);
  });
});

/** A local server whose handler each test sets. */
function startServer(): Promise<{ url: string; server: http.Server; handle: (h: http.RequestListener) => void }> {
  let handler: http.RequestListener = (_req, res) => res.end();
  const server = http.createServer((req, res) => handler(req, res));
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, server, handle: (h) => (handler = h) });
    });
  });
}

const image = (name: string): ImageJson => ({
  Id: 'f'.repeat(64), Name: name, SizeMb: 5, Infrastructure: 'QEMU', Created: new Date().toISOString(),
  StageSpec: { ImageFormat: 'folder' },
  RunSpec: { DeviceMappings: [], DefaultInstanceMemory: 128, MinInstanceDiskMB: 0, Compiler: 'linux-go-qemu' },
  SizeBytes: 5_000_000, Base: 'linux', Language: 'go', Provider: 'qemu', Args: [], KernelConfigHash: 'abc',
});

describe('UnikClient', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    srv = await startServer();
  });
  after(() => {
    srv.server.closeAllConnections();
    srv.server.close();
  });

  it('maps a refused connection to DaemonUnreachableError with one line', async () => {
    const closed = await startServer();
    const url = closed.url;
    await new Promise((r) => closed.server.close(r));
    const client = new UnikClient(url);
    await assert.rejects(client.images.all(), (err: unknown) => {
      assert.ok(err instanceof DaemonUnreachableError);
      assert.equal(err.causeCode, 'ECONNREFUSED');
      assert.equal(
        err.message,
        `cannot reach the unik daemon at ${url} (connection refused): start it with "unik daemon", ` +
          'or point the CLI at another with --host HOST:PORT, UNIK_HOST or "unik target"',
      );
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  });

  it('maps a JSON error body to UnikApiError', async () => {
    srv.handle((req, res) => {
      assert.equal(req.url, '/images/nope');
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'no such image: nope', code: 'UNIK_ERR_NOT_FOUND', hint: 'see `unik images`' }));
    });
    await assert.rejects(new UnikClient(srv.url).images.get('nope'), (err: unknown) => {
      assert.ok(err instanceof UnikApiError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'UNIK_ERR_NOT_FOUND');
      assert.equal(err.message, 'no such image: nope');
      assert.equal(err.hint, 'see `unik images`');
      return true;
    });
  });

  it('treats an unexpected success status as an error and keeps plain-text bodies', async () => {
    srv.handle((_req, res) => {
      res.writeHead(200);
      res.end();
    });
    await assert.rejects(new UnikClient(srv.url).instances.delete('x', true), (err: unknown) => {
      assert.ok(err instanceof UnikApiError);
      assert.equal(err.status, 200);
      return true;
    });
    srv.handle((_req, res) => {
      res.writeHead(500);
      res.end('kaput');
    });
    await assert.rejects(new UnikClient(srv.url).availableCompilers(), { status: 500, message: 'kaput', code: 'UNIK_ERR_HTTP_500' });
  });

  it('sends run requests as JSON and query flags as strings', async () => {
    const seen: string[] = [];
    srv.handle((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${body}`);
        res.writeHead(req.method === 'DELETE' ? 204 : 201, { 'content-type': 'application/json' });
        res.end(req.method === 'DELETE' ? undefined : JSON.stringify({ Name: 'web' }));
      });
    });
    const client = new UnikClient(srv.url.replace('http://', ''));
    const inst = await client.instances.run({ ImageName: 'app', Ports: ['8080:80'] });
    assert.equal(inst.Name, 'web');
    await client.images.delete('app', true);
    assert.deepEqual(seen, ['POST /instances/run {"ImageName":"app","Ports":["8080:80"]}', 'DELETE /images/app?force=true ']);
  });

  describe('build', () => {
    let dir: string;
    let tarPath: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'unik-cli-app-'));
      await writeFile(join(dir, 'main.go'), 'package main\n');
      await mkdir(join(dir, '.git'));
      await writeFile(join(dir, '.git', 'HEAD'), 'ref\n');
      await mkdir(join(dir, 'node_modules', '.cache'), { recursive: true });
      await writeFile(join(dir, 'node_modules', '.cache', 'x'), 'x');
      await writeFile(join(dir, 'node_modules', 'keep.js'), 'x');
      tarPath = await packDirectory(dir);
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
      await rm(tarPath, { force: true });
    });

    it('packs the directory .-rooted without .git and node_modules/.cache', async () => {
      const entries: string[] = [];
      await tar.t({ file: tarPath, onReadEntry: (e) => entries.push(e.path) });
      assert.ok(entries.includes('./main.go'), entries.join(','));
      assert.ok(entries.includes('./node_modules/keep.js'));
      assert.ok(!entries.some((e) => e.includes('.git') || e.includes('.cache')), entries.join(','));
      await assert.rejects(packDirectory(join(dir, 'missing')), PackError);
      await assert.rejects(packDirectory(join(dir, 'main.go')), /not a directory/);
    });

    it('uploads "tarfile" and reads the NDJSON stream', async () => {
      srv.handle((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('latin1')));
        req.on('end', () => {
          assert.match(req.headers['content-type'] ?? '', /^multipart\/form-data/);
          assert.equal(req.headers.accept, 'application/x-ndjson');
          assert.match(body, /name="tarfile"/);
          assert.equal(req.url, '/images/app/create?lang=go&mounts=%2Fdata%2C%2Flogs&force=false');
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          res.write('{"Progress":{"Step":"compile","Message":"go build"}}\n{"Progress":{"Step":"kernel",');
          res.end('"Message":"building","Percent":50}}\n' + JSON.stringify({ Image: image('app') }) + '\n');
        });
      });
      const events: BuildProgress[] = [];
      const img = await new UnikClient(srv.url).images.build(
        { name: 'app', tarPath, language: 'go', mounts: ['/data', '/logs'] },
        (e) => events.push(e),
      );
      assert.equal(img.Name, 'app');
      assert.deepEqual(events, [
        { Step: 'compile', Message: 'go build' },
        { Step: 'kernel', Message: 'building', Percent: 50 },
      ]);
    });

    it('throws the streamed Error, and expects 201 without a listener', async () => {
      srv.handle((req, res) => {
        req.resume();
        req.on('end', () => {
          if (req.headers.accept === 'application/x-ndjson') {
            res.writeHead(200, { 'content-type': 'application/x-ndjson' });
            res.end(JSON.stringify({ Error: { message: 'go build failed', code: 'UNIK_ERR_BUILD_FAILED', Status: 422 } }) + '\n');
          } else {
            res.writeHead(201, { 'content-type': 'application/json' });
            res.end(JSON.stringify(image('plain')));
          }
        });
      });
      const client = new UnikClient(srv.url);
      await assert.rejects(client.images.build({ name: 'app', tarPath }, () => {}), {
        name: 'UnikApiError', status: 422, code: 'UNIK_ERR_BUILD_FAILED', message: 'go build failed',
      });
      assert.equal((await client.images.build({ name: 'plain', tarPath })).Name, 'plain');
    });
  });
});
