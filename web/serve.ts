/**
 * `npm run web`: builds the page with Vite (web/vite.config.ts) and serves `web/dist` on localhost.
 *
 *   npm run web                 # build, then serve on http://localhost:5173
 *   npm run web -- --port 8080  # another port (0 = any free port)
 *   npm run web -- --no-build   # serve the existing build
 *   npm run web -- --base /lowrank/   # serve under a sub-path, as GitHub Pages does
 *   npm run web -- --isolated   # send COOP/COEP (cross-origin isolated: threaded wasm)
 *
 * The e2e test uses {@link buildPage} and {@link servePage} directly.
 */
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { PageBuildOptions } from './vite.config.js';

const webDir = path.dirname(fileURLToPath(import.meta.url));
export const distDir = path.join(webDir, 'dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

/**
 * Runs the Vite production build (into `web/dist` unless `opts.outDir`); throws with Vite's message
 * on failure.
 *
 * @example
 * await buildPage(); // web/dist
 */
export async function buildPage(opts: PageBuildOptions = {}): Promise<void> {
  const { build } = await import('vite');
  const { pageConfig } = await import('./vite.config.js');
  await build({ configFile: false, ...pageConfig(opts), logLevel: 'warn' });
}

export interface ServeOptions {
  /** Folder to serve (default `web/dist`). */
  dir?: string;
  /**
   * URL prefix the page lives under, like a GitHub Pages project site (`/lowrank/`); requests outside
   * it get 404, so a page that fetches anything by an absolute path fails the way it would there.
   */
  base?: string;
  /**
   * Send `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`,
   * which make the page cross-origin isolated (SharedArrayBuffer, hence tfjs's threaded wasm).
   */
  crossOriginIsolated?: boolean;
}

/**
 * Serves the built page on `127.0.0.1:port`; resolves with the server and the page's URL.
 *
 * @example
 * const { server, url } = await servePage(0, { base: '/lowrank/', crossOriginIsolated: true });
 */
export function servePage(
  port = 5173,
  opts: ServeOptions = {},
): Promise<{ server: http.Server; url: string }> {
  const root = path.resolve(opts.dir ?? distDir);
  const base = normalizeBase(opts.base ?? '/');
  const isolation: Record<string, string> = opts.crossOriginIsolated
    ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
    : {};
  const server = http.createServer((req, res) => {
    const fullPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (fullPath === base.slice(0, -1)) {
      res.writeHead(301, { location: base }).end();
      return;
    }
    if (!fullPath.startsWith(base)) {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`not found: ${fullPath} (the page is at ${base})`);
      return;
    }
    const urlPath = '/' + fullPath.slice(base.length);
    const file = path.resolve(root, '.' + (urlPath.endsWith('/') ? urlPath + 'index.html' : urlPath));
    if (!file.startsWith(root + path.sep) && file !== root) {
      res.writeHead(403).end('forbidden');
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${urlPath}`);
        return;
      }
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
        ...isolation,
      });
      res.end(data);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${p}${base}` });
    });
  });
}

/** `lowrank` → `/lowrank/`, `/` stays `/`. */
function normalizeBase(base: string): string {
  const trimmed = base.replace(/^\/+|\/+$/g, '');
  return trimmed ? `/${trimmed}/` : '/';
}

async function main(argv: string[]): Promise<void> {
  const portArg = argv.indexOf('--port');
  const port = portArg >= 0 ? Number(argv[portArg + 1]) : 5173;
  if (!Number.isInteger(port) || port < 0) {
    console.error(`web: --port must be an integer ≥ 0 (got ${argv[portArg + 1]})`);
    process.exit(2);
  }
  if (!argv.includes('--no-build')) {
    console.log('web: building the page with Vite…');
    await buildPage();
  } else if (!fs.existsSync(path.join(distDir, 'index.html'))) {
    console.error('web: no build in web/dist; run without --no-build');
    process.exit(2);
  }
  const baseArg = argv.indexOf('--base');
  const base = baseArg >= 0 ? argv[baseArg + 1] : '/';
  if (base === undefined || base.startsWith('-')) {
    console.error('web: --base needs a URL path (e.g. --base /lowrank/)');
    process.exit(2);
  }
  const { url } = await servePage(port, { base, crossOriginIsolated: argv.includes('--isolated') });
  console.log(`web: serving ${path.relative(process.cwd(), distDir)} at ${url} (Ctrl-C to stop)`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`web: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
