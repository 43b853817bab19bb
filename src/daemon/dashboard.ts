import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../util/repo.js';

// The web dashboard at /ui: a few static files, held in memory. The page, its stylesheet and
// icon are in src/ui/ as written; its modules are src/ui/*.ts as tsc compiled them (no bundler).
// Only these exact paths are served, and only they pass the guard without the API token: a
// browser's address bar cannot send one, so the page asks for it and sends it with its own
// calls (src/ui/api.ts). Host, Origin and client-certificate checks apply to them as to the API.

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** What every dashboard answer carries: its own code only, never framed, never sniffed. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // revalidated each time (a 304 by ETag): a new daemon's files are never mixed with old ones
  'cache-control': 'no-cache',
};

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

export interface Dashboard {
  /** the exact URL paths served, e.g. /ui, /ui/js/main.js */
  readonly files: ReadonlyMap<string, Asset>;
  /** whether a request is for one of those files (a GET or HEAD of an exact path; the query is ignored) */
  isFile(method: string, url: string): boolean;
}

/** Reads the dashboard's files once, when the app is built. */
export function loadDashboard(): Dashboard {
  const files = new Map<string, Asset>();
  const add = (path: string, name: string, body: Buffer) => {
    const ext = name.slice(name.lastIndexOf('.'));
    files.set(path, { type: TYPES[ext]!, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  };
  const web = join(repoRoot(), 'src', 'ui');
  const page = readFileSync(join(web, 'index.html'));
  add('/ui', 'index.html', page);
  add('/ui/', 'index.html', page);
  for (const name of ['style.css', 'icon.svg']) add(`/ui/${name}`, name, readFileSync(join(web, name)));
  // dist/src/daemon/dashboard.js → dist/src/ui/
  const js = fileURLToPath(new URL('../ui/', import.meta.url));
  for (const name of readdirSync(js).filter((n) => n.endsWith('.js')))
    add(`/ui/js/${name}`, name, Buffer.from(readFileSync(join(js, name), 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n')));
  return {
    files,
    isFile: (method, url) => (method === 'GET' || method === 'HEAD') && files.has(url.split('?')[0]!),
  };
}

export function dashboardRoutes(app: FastifyInstance, dash: Dashboard): void {
  for (const [path, asset] of dash.files)
    app.get(path, async (req, reply) => {
      void reply.headers(DASHBOARD_HEADERS).header('etag', asset.etag);
      if (String(req.headers['if-none-match'] ?? '').split(',').some((t) => t.trim().replace(/^W\//, '') === asset.etag)) return reply.code(304).send();
      return reply.type(asset.type).send(asset.body);
    });
}
