// A guest reaches the host's 127.0.0.1 through QEMU's user network (its gateway 10.0.2.2). The
// daemon's loopback port must not answer it: a hostile image would otherwise drive the API as
// root. A host service of the test's own, reached the same way, proves the path works.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, suiteDaemon, tarOf, waitFor } from './harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'unik-guest-iso-'));
const d = suiteDaemon({ teardown: () => rmSync(scratch, { recursive: true, force: true }) });

// GETs /available_providers from 10.0.2.2:PORT and prints the status line (or what failed)
const PROBE = String.raw`#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static void probe(const char *label, const char *port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(atoi(port));
  inet_pton(AF_INET, "10.0.2.2", &a.sin_addr);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { printf("%s: connect failed\n", label); return; }
  char req[256];
  snprintf(req, sizeof req, "GET /available_providers HTTP/1.1\r\nHost: 10.0.2.2:%s\r\nConnection: close\r\n\r\n", port);
  write(s, req, strlen(req));
  char buf[4096];
  int n = 0, r;
  while (n < (int)sizeof buf - 1 && (r = read(s, buf + n, sizeof buf - 1 - n)) > 0) n += r;
  buf[n] = 0;
  char *cr = strchr(buf, '\r');
  if (cr) *cr = 0;
  printf("%s: [%s] %d bytes\n", label, buf, n);
  close(s);
}
int main(void) {
  probe("control", getenv("CONTROL_PORT"));
  probe("daemon", getenv("DAEMON_PORT"));
  fflush(stdout);
  return 0;
}
`;

test('a guest cannot reach the daemon through 10.0.2.2; a host service on loopback it can', async () => {
  const control = createServer((_req, res) => res.end('["control"]'));
  const controlPort = await freePort();
  await new Promise<void>((r) => control.listen(controlPort, '127.0.0.1', r));
  try {
    writeFileSync(join(scratch, 'probe.c'), PROBE);
    const built = await d.upload('probe', tarOf(scratch));
    assert.equal(built.status, 201, JSON.stringify(built.json));
    const run = await d.api('POST', '/instances/run', { ImageName: 'probe', InstanceName: 'probe', Env: { CONTROL_PORT: String(controlPort), DAEMON_PORT: String(d.port) } });
    assert.equal(run.status, 201, run.text);
    await waitFor('the probe to finish', async () => ((await d.api('GET', '/instances/probe')).json.State === 'stopped' ? true : undefined), 90_000);
    const logs = (await d.api('GET', '/instances/probe/logs')).text;
    assert.match(logs, /control: \[HTTP\/1\.1 200 OK\]/, `the guest's network path to host loopback works: ${logs}`);
    const daemon = /daemon: .*/.exec(logs)?.[0] ?? '';
    assert.ok(daemon, `the probe reported on the daemon: ${logs}`);
    assert.doesNotMatch(daemon, /200|qemu/, `the daemon answered a guest: ${daemon}`);
    assert.match(daemon, /\[\] 0 bytes|connect failed/);
    assert.match(d.log(), /closed a loopback connection from a VM or build account/);
  } finally {
    control.close();
  }
});
