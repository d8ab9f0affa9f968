/**
 * The browser twin of `tensor/backend.ts` (same exports; the web build swaps it in through the alias in
 * `web/vite.config.ts`, as it does for `io/source.ts`). DESIGN.md §2: `auto` picks the fastest backend
 * that loads and says which; in a browser the order is WebGPU, then WebGL, then WASM, then tfjs's `cpu`.
 * Each is tried for real (a one-op smoke test after `setBackend`), and the report says why the faster
 * ones were passed over, so the page can show it.
 *
 * Importing this file registers the webgpu and wasm backends with tfjs (webgl and cpu come with
 * `@tensorflow/tfjs`). It imports tfjs directly, like `backend.ts`, because `tf.ts` imports it.
 */
import * as tfc from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { ConfigError, NotSupportedError } from '../errors.js';
import { registerWasmFallbackKernels } from './wasm_kernels.js';
import { registerGpuKernelFixes } from './gpu_kernels.js';

registerWasmFallbackKernels();
registerGpuKernelFixes();

export const BACKENDS = ['auto', 'native', 'wasm', 'cpu', 'tensorflow', 'webgpu', 'webgl'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** What {@link initBackend} did: the backend in use and why each faster one was passed over. */
export interface BackendReport {
  backend: string;
  tried: { name: string; ok: boolean; reason?: string }[];
}

export interface BackendInfo {
  backend: string;
  addonLoaded: boolean;
  addonError?: string;
  blas: string | null;
  threads: number;
  version: string;
  tfjsVersion: string;
}

/** Keep in step with package.json and backend.ts (checked by tests/web_source_browser.test.ts). */
export const LOWRANK_VERSION = '0.1.0';

/** The order `auto` tries in a browser. */
export const BROWSER_AUTO_ORDER = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;

/**
 * Tells the wasm backend where its binaries are (the bundler's asset URLs, by file name:
 * `tfjs-backend-wasm.wasm`, `tfjs-backend-wasm-simd.wasm`, `tfjs-backend-wasm-threaded-simd.wasm`).
 * Call before {@link initBackend}.
 *
 * @example
 * configureWasmPaths({ 'tfjs-backend-wasm.wasm': wasmUrl, ... });
 */
export function configureWasmPaths(paths: Record<string, string>): void {
  setWasmPaths(paths);
}

/** Browsers run tfjs's own threads (WebGPU/WebGL/WASM); there is no native thread count. */
export function setThreads(_threads?: number): number {
  return 1;
}

function webgpuAvailable(): boolean {
  return typeof navigator !== 'undefined' && (navigator as { gpu?: unknown }).gpu != null;
}

async function tryOne(name: Exclude<BackendName, 'auto'>): Promise<string | undefined> {
  if (name === 'native') return 'the native addon is Node-only';
  if (name === 'tensorflow') return '@tensorflow/tfjs-node is Node-only';
  if (name === 'webgpu' && !webgpuAvailable()) return 'this browser has no WebGPU (navigator.gpu is missing)';
  try {
    if (!(await tfc.setBackend(name))) return `tfjs could not initialise backend "${name}"`;
    await tfc.ready();
    // Some WebGL stacks initialise and then fail at the first shader: run one op.
    const probe = tfc.tidy(() => tfc.add(tfc.scalar(1), tfc.scalar(2)));
    const value = (await probe.data())[0];
    probe.dispose();
    return value === 3 ? undefined : `smoke test gave 1 + 2 = ${value}`;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Selects the compute backend: `auto` tries WebGPU, WebGL, WASM, cpu in that order. Throws
 * ConfigError for an unknown name and NotSupportedError when the named backend cannot run here.
 *
 * @example
 * const { backend, tried } = await initBackend('auto'); // e.g. 'webgl', with webgpu's reason in tried
 */
export async function initBackend(name = 'auto', _opts: { threads?: number } = {}): Promise<BackendReport> {
  if (!(BACKENDS as readonly string[]).includes(name)) {
    throw new ConfigError(
      'backend',
      `must be one of ${BACKENDS.join(', ')}`,
      name,
      'pick one of those names',
    );
  }
  const order: readonly Exclude<BackendName, 'auto'>[] =
    name === 'auto' ? BROWSER_AUTO_ORDER : [name as Exclude<BackendName, 'auto'>];
  const tried: BackendReport['tried'] = [];
  for (const candidate of order) {
    const reason = await tryOne(candidate);
    tried.push(reason === undefined ? { name: candidate, ok: true } : { name: candidate, ok: false, reason });
    if (reason === undefined) return { backend: tfc.getBackend(), tried };
  }
  const why = tried.map((t) => `${t.name}: ${t.reason}`).join('; ');
  throw new NotSupportedError(
    'initBackend',
    `backend "${name}" in this browser (${why})`,
    'try another browser, or enable WebGL or WebAssembly',
  );
}

/** What the page shows about compute. */
export function backendInfo(): BackendInfo {
  tfc.backend();
  return {
    backend: tfc.getBackend(),
    addonLoaded: false,
    blas: null,
    threads: 1,
    version: LOWRANK_VERSION,
    tfjsVersion: tfc.version_core,
  };
}
