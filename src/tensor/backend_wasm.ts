/**
 * The tfjs `wasm` backend as lowrank's fallback when the native addon is not built: loads the
 * .wasm binaries from node_modules (no network) and registers the kernels tfjs-backend-wasm 4.22
 * lacks but a training step needs (wasm_kernels.ts, shared with the browser build).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { registerWasmFallbackKernels } from './wasm_kernels.js';
import { loadTfWasm } from './tfjs.js';

let loaded: Promise<string | undefined> | undefined;

async function load(): Promise<string | undefined> {
  let wasm: ReturnType<typeof loadTfWasm>;
  try {
    wasm = loadTfWasm(); // through require, as tfjs.ts loads every tfjs package
  } catch (e) {
    return `@tensorflow/tfjs-backend-wasm failed to load: ${(e as Error).message}`;
  }
  const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json');
  wasm.setWasmPaths(join(dirname(pkg), 'dist') + '/');
  registerWasmFallbackKernels();
  return undefined;
}

/**
 * Prepares the wasm backend (once); resolves to a reason string when it cannot, else undefined.
 * @example const why = await initWasmBackend(); if (!why) await tf.setBackend('wasm');
 */
export function initWasmBackend(): Promise<string | undefined> {
  loaded ??= load();
  return loaded;
}
