/**
 * The browser twin of `tfjs.ts` (same exports; the web build swaps it in, `web/vite.config.ts`). In a
 * bundle the `@tensorflow/tfjs` union is what registers the gradients and chained ops and brings the
 * WebGL backend the page uses; the bundler drops what is never referenced.
 */
import * as tfUnion from '@tensorflow/tfjs';
import * as cpu from '@tensorflow/tfjs-backend-cpu';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import type * as TfCore from '@tensorflow/tfjs-core';

/** Not used in a browser bundle (kept for the same exports as `tfjs.ts`). */
export const UNUSED_TFJS_PACKAGES: readonly string[] = [];

/** tfjs-core's API with the gradients and chained ops registered. */
export const tfCore: typeof TfCore = tfUnion;
/** The cpu backend package (`MathBackendCPU`, its shared kernel implementations). */
export const tfCpu = cpu;

/**
 * The wasm backend package (bundled: the page registers it at start).
 *
 * @example
 * loadTfWasm().setWasmPaths(paths);
 */
export function loadTfWasm(): typeof wasm {
  return wasm;
}
