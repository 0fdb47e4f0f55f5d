/**
 * Static files of the web app and the dashboard (built by
 * scripts/build-web.mjs into dist/web), read once and served from memory.
 * GET/HEAD only; unknown paths are 404; pages carry a strict content
 * security policy (scripts and connections to this origin only).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/web of this package (the same path from src/server and dist/server). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'permissions-policy': 'camera=(self), microphone=(self), speaker-selection=(self)',
  'cache-control': 'no-cache',
};

export class WebAssets {
  private readonly files = new Map<string, { type: string; body: Buffer }>();
  readonly available: boolean;

  /** `routes` maps URL paths to file names in `root` ('/' → 'index.html'). */
  constructor(root: string, routes: Record<string, string>) {
    this.available = existsSync(join(root, 'index.html'));
    if (!this.available) {
      return;
    }
    const names = new Set(readdirSync(root));
    for (const [path, name] of Object.entries(routes)) {
      if (names.has(name)) {
        this.files.set(path, {
          type: TYPES[extname(name)] ?? 'application/octet-stream',
          body: readFileSync(join(root, name)),
        });
      }
    }
  }

  /** Answers the request if it names one of the files; false otherwise. */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const file = this.files.get(path);
    if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return false;
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': file.type,
      'content-length': file.body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}

/** The web app on the signalling port. */
export function appRoutes(): Record<string, string> {
  const routes: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html' };
  for (const f of ['app.js', 'wzp.js', 'wzp-worklet.js', 'style.css']) {
    routes[`/${f}`] = f;
    routes[`/${f}.map`] = `${f}.map`;
  }
  return routes;
}

/** The dashboard on the operator HTTP port. */
export function dashboardRoutes(): Record<string, string> {
  return {
    '/dashboard': 'dashboard.html',
    '/dashboard.js': 'dashboard.js',
    '/dashboard.js.map': 'dashboard.js.map',
  };
}
