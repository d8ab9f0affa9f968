/**
 * The browser twin of `tensor/backend.ts` (same exports; the web build swaps it in through the alias in
 * `web/vite.config.ts`, as it does for `io/source.ts`). docs/design.md "Backends": `auto` picks the fastest
 * backend that loads and says which; in a browser the order is WebGPU, then WebGL, then WASM, then tfjs's
 * `cpu`. Each is tried for real (a one-op smoke test after `setBackend`), and the report says why the faster
 * ones were passed over, so the page can show it.
 *
 * Importing this file registers the webgpu and wasm backends with tfjs (webgl and cpu come with
 * `@tensorflow/tfjs`). It imports tfjs directly, like `backend.ts`, because `tf.ts` imports it.
 */
import * as tfc from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { ConfigError, NotSupportedError } from '../errors.js';
import { BACKENDS, type BackendName, type BackendReport, type BackendInfo } from './backend_types.js';
import { registerWasmFallbackKernels } from './wasm_kernels.js';
import { registerGpuKernelFixes } from './gpu_kernels.js';

registerWasmFallbackKernels();
registerGpuKernelFixes();

export { BACKENDS, type BackendName, type BackendReport, type BackendInfo } from './backend_types.js';

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

/** What a GPU backend would run on: a description, and whether it is a software renderer. */
export interface GpuAdapterInfo {
  description: string;
  software: boolean;
}

/** Renderer names of CPU-emulated GPUs (Chromium's SwiftShader, Mesa's llvmpipe/softpipe, Windows' WARP). */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render|microsoft basic|warp/i;

interface WebGpuAdapterLike {
  isFallbackAdapter?: boolean;
  info?: {
    vendor?: string;
    architecture?: string;
    device?: string;
    description?: string;
    isFallbackAdapter?: boolean;
  };
}

/**
 * The WebGPU adapter tfjs would get (`navigator.gpu.requestAdapter()`), or the reason there is none.
 * A fallback adapter (`isFallbackAdapter`, e.g. SwiftShader) is software.
 * @example const a = await webgpuAdapterInfo(); if (typeof a !== 'string' && a.software) …
 */
export async function webgpuAdapterInfo(): Promise<GpuAdapterInfo | string> {
  if (!webgpuAvailable()) return 'this browser has no WebGPU (navigator.gpu is missing)';
  try {
    const gpu = (navigator as unknown as { gpu: { requestAdapter(): Promise<WebGpuAdapterLike | null> } })
      .gpu;
    const adapter = await gpu.requestAdapter();
    if (!adapter)
      return 'navigator.gpu.requestAdapter() returned no adapter (WebGPU disabled or no usable GPU)';
    const i = adapter.info ?? {};
    const description =
      [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown adapter';
    const fallback = adapter.isFallbackAdapter === true || i.isFallbackAdapter === true;
    return {
      description: fallback ? `${description} (fallback adapter)` : description,
      software: fallback || SOFTWARE_RENDERER.test(description),
    };
  } catch (e) {
    return `navigator.gpu.requestAdapter() failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * The WebGL renderer (unmasked when the browser allows), or the reason WebGL cannot start.
 * @example const r = webglRendererInfo(); // { description: 'Google SwiftShader', software: true }
 */
export function webglRendererInfo(): GpuAdapterInfo | string {
  if (typeof document === 'undefined' && typeof OffscreenCanvas === 'undefined')
    return 'no canvas here (not a browser page or worker)';
  try {
    const canvas =
      typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
    const gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as WebGLRenderingContext | null;
    if (!gl) return 'the browser gave no WebGL context (WebGL disabled or blocklisted)';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return { description: renderer, software: SOFTWARE_RENDERER.test(renderer) };
  } catch (e) {
    return `WebGL context creation failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

async function tryOne(name: Exclude<BackendName, 'auto'>, auto: boolean): Promise<string | undefined> {
  if (name === 'native') return 'the native addon is Node-only';
  if (name === 'tensorflow') return '@tensorflow/tfjs-node is Node-only';
  if (name === 'webgpu' || name === 'webgl') {
    const info = name === 'webgpu' ? await webgpuAdapterInfo() : webglRendererInfo();
    if (typeof info === 'string') return info;
    // docs/design.md "Backends": auto picks the fastest backend really there. A CPU-emulated GPU runs tfjs's
    // shaders far slower than wasm (40 AdaLoRA steps: 40.6 s on SwiftShader WebGL vs 7.7 s on wasm).
    if (auto && info.software)
      return `software renderer (${info.description}): slower than wasm here, so not chosen by auto (name it explicitly to use it)`;
  }
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
 * Selects the compute backend: `auto` tries WebGPU, WebGL, WASM, cpu in that order, passing over a
 * GPU backend whose adapter is a software renderer (WebGPU `isFallbackAdapter`, WebGL on SwiftShader
 * or llvmpipe): wasm is faster there. Each skipped backend's real reason is in `tried`. Throws
 * ConfigError for an unknown name and NotSupportedError when the named backend cannot run here.
 *
 * @example
 * const { backend, tried } = await initBackend('auto'); // e.g. 'wasm', with 'software renderer (…)' for webgl in tried
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
    const reason = await tryOne(candidate, name === 'auto');
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
