import { readFileSync } from 'node:fs';
import { buildApp } from './app.js';
import { createCore } from '../core/core.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** `unik daemon`: serves the API until SIGINT/SIGTERM. VMs keep running across restarts. */
export async function runDaemon(opts: { port: number; host: string }): Promise<void> {
  const token = process.env.UNIK_API_TOKEN || undefined;
  if (!LOOPBACK.has(opts.host) && !token) {
    process.stderr.write(
      `unik: refusing to listen on ${opts.host} without a token: anyone who reaches the port could run VMs.\n` +
        'hint: set UNIK_API_TOKEN (clients send the same variable), or listen on 127.0.0.1\n',
    );
    process.exit(1);
  }
  const core = await createCore({ log: (m) => process.stderr.write(`unik: ${m}\n`) });
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const app = await buildApp({ core, token, logger: true, version });
  const shutdown = async () => {
    await app.close();
    core.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  try {
    await app.listen({ port: opts.port, host: opts.host });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? `port ${opts.port} is already in use (another unik daemon?)` : err.message;
    process.stderr.write(`unik: cannot listen on ${opts.host}:${opts.port}: ${why}\n`);
    core.close();
    process.exit(1);
  }
  process.stderr.write(`unik: daemon listening on http://${opts.host}:${opts.port} (state in ${core.paths.home})\n`);
}
