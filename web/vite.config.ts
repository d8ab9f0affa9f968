/**
 * Vite build of the browser page (issue 8). Two library-specific rules on top of a plain build:
 *
 * 1. Node-only library modules are swapped for their browser twins, as docs/design.md "Floors" prescribes,
 *    without touching the code that imports them: `src/io/source.ts` (file system) for
 *    `source_browser.ts` (an in-memory file tree), `src/tensor/backend.ts` (native addon) for
 *    `backend_browser.ts` (WebGPU → WebGL → WASM), `src/tensor/native/addon.ts` (Node-API addon) for
 *    `addon_browser.ts` (never loads), `src/tensor/tfjs.ts` (tfjs through `require`) for `tfjs_browser.ts`
 *    (the `@tensorflow/tfjs` union, as a bundler resolves it).
 * 2. No Node-only module may reach the bundle: any import of a Node builtin (`node:fs`, `path`, …) is a
 *    build error that names the importing file, so a leak in any layer is caught at build time.
 * 3. tfjs-backend-wasm's threaded build works after minification ({@link wasmThreadsSurviveMinify}).
 */
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineConfig, type Plugin, type UserConfig } from 'vite';

const webDir = path.dirname(fileURLToPath(import.meta.url));
const repoDir = path.dirname(webDir);
/** Node-only library modules and their browser twins (same exports). */
const twin = (...parts: string[]): [string, string] => {
  const file = path.join(repoDir, 'src', ...parts);
  return [file, file.replace(/\.ts$/, '_browser.ts')];
};
const SWAPS = new Map([
  twin('io', 'source.ts'),
  twin('tensor', 'backend.ts'),
  twin('tensor', 'native', 'addon.ts'),
  twin('tensor', 'tfjs.ts'),
]);
const SWAPPED_NAMES = /(^|\/)(source|backend|addon|tfjs)(\.js|\.ts)?$/;

/** Node builtins a browser bundle must not import (with and without the `node:` prefix). */
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/**
 * True when the package that holds `importer` maps `builtin` to `false` in its package.json `browser`
 * field (tfjs, seedrandom): the import is guarded and bundlers replace it with an empty module.
 */
function browserFieldDisables(importer: string, builtin: string): boolean {
  let dir = path.dirname(importer);
  while (dir.includes(`${path.sep}node_modules${path.sep}`)) {
    const pkgFile = path.join(dir, 'package.json');
    if (fs.existsSync(pkgFile)) {
      const browser = (JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { browser?: unknown }).browser;
      return (
        typeof browser === 'object' &&
        browser !== null &&
        (browser as Record<string, unknown>)[builtin] === false
      );
    }
    dir = path.dirname(dir);
  }
  return false;
}

/** Swaps io/source for its browser twin and turns any Node builtin import into a build error. */
export function lowrankBrowser(): Plugin {
  const leaks: string[] = [];
  return {
    name: 'lowrank-browser',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      if (NODE_BUILTINS.has(source)) {
        const from = importer ? path.relative(repoDir, importer) : '(entry)';
        if (!(importer && browserFieldDisables(importer, source))) leaks.push(`${from} imports ${source}`);
        return { id: `\0node-leak:${source}`, moduleSideEffects: false };
      }
      if (!importer || !SWAPPED_NAMES.test(source)) return null;
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      return (resolved && SWAPS.get(path.normalize(resolved.id))) ?? null;
    },
    load(id) {
      if (id.startsWith('\0node-leak:')) return 'export default {};';
      return null;
    },
    buildEnd() {
      if (leaks.length > 0) {
        const unique = [...new Set(leaks)].sort();
        this.error(
          `Node-only imports reached the browser bundle (docs/design.md "Floors"):\n  ${unique.join('\n  ')}`,
        );
      }
    },
  };
}

/** tfjs-backend-wasm's Emscripten factory for the threaded SIMD binary. */
const THREADED_FACTORY =
  /[\\/]@tensorflow[\\/]tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/;
/** The first statement of the factory's inner function, after which a local `_scriptDir` is declared. */
const INNER_START = 'WasmBackendModuleThreadedSimd = WasmBackendModuleThreadedSimd || {};';

/**
 * Makes tfjs-backend-wasm's threaded factory self-contained so that it survives minification.
 *
 * tfjs starts each wasm thread (a pthread Web Worker) from `factory.toString()`: the worker evaluates
 * the text of the inner Emscripten function on its own, outside the closure it was written in. That
 * function reads `_scriptDir`, a variable of the enclosing closure, guarded by
 * `typeof _scriptDir !== "undefined"` — harmless unminified (the name is simply undeclared in the
 * thread). The minifier renames the closure's variable (`e`) and, seeing it declared, drops the
 * `typeof` guard, so every thread dies with `ReferenceError: e is not defined` and the backend never
 * finishes starting (cross-origin isolated pages only: threads need SharedArrayBuffer).
 *
 * The fix declares `_scriptDir` inside the inner function too, computed the same way as the outer one
 * for a browser (`document.currentScript`; the outer `__filename` branch is Node-only): the text that
 * is sent to the threads then has no free variable the minifier could rename. A tfjs version whose
 * factory no longer has this shape fails the build instead of shipping broken threads.
 */
export function wasmThreadsSurviveMinify(): Plugin {
  return {
    name: 'lowrank-wasm-threads',
    enforce: 'pre',
    transform(code, id) {
      if (!THREADED_FACTORY.test(id.split('?')[0]!)) return null;
      const at = code.indexOf(INNER_START);
      if (at < 0 || !code.includes('typeof _scriptDir !== "undefined"')) {
        this.error(
          `${path.relative(repoDir, id)}: the threaded wasm factory has an unexpected shape ` +
            `(no "${INNER_START}"); re-check web/vite.config.ts wasmThreadsSurviveMinify for this tfjs version`,
        );
      }
      const local =
        "\n  var _scriptDir = typeof document !== 'undefined' && document.currentScript ? document.currentScript.src : undefined;";
      const end = at + INNER_START.length;
      return { code: code.slice(0, end) + local + code.slice(end), map: null };
    },
  };
}

export interface PageBuildOptions {
  /** Output folder (default `web/dist`). */
  outDir?: string;
  /**
   * Apply {@link wasmThreadsSurviveMinify} (default true). Only the e2e test turns it off, to build the
   * page with tfjs's broken threads and check that the page falls back to single-threaded wasm.
   */
  fixWasmThreads?: boolean;
}

/**
 * The page's Vite config. `base: './'`: every URL in the build is relative, so the same files work
 * at a domain's root and under a sub-path (a GitHub Pages project site such as `/lowrank/`).
 *
 * @example
 * await build({ configFile: false, ...pageConfig({ outDir: '/tmp/page' }) });
 */
export function pageConfig(opts: PageBuildOptions = {}): UserConfig {
  const plugins = (): Plugin[] =>
    opts.fixWasmThreads === false ? [lowrankBrowser()] : [lowrankBrowser(), wasmThreadsSurviveMinify()];
  return {
    root: webDir,
    base: './',
    logLevel: 'warn',
    plugins: plugins(),
    worker: {
      format: 'es',
      plugins,
      rolldownOptions: { output: { keepNames: true } },
    },
    build: {
      outDir: opts.outDir ?? path.join(webDir, 'dist'),
      emptyOutDir: true,
      target: 'es2022',
      chunkSizeWarningLimit: 8000,
      reportCompressedSize: false,
      // keepNames: the page shows errors by class name (CheckpointError, …), which minifying would mangle.
      rolldownOptions: { checks: { pluginTimings: false }, output: { keepNames: true } },
    },
    server: { fs: { allow: [repoDir] } },
  };
}

export default defineConfig(pageConfig());
