/**
 * How TensorFlow.js is loaded in Node (the web build swaps in `tfjs_browser.ts`, same exports). `tf.ts`
 * re-exports {@link tfCore} as `tf`; the backend files take the cpu backend's classes from here, so no
 * other module loads a tfjs package at run time.
 *
 * What is loaded, and why this way (issue 18, "memory that goes back": the process before any model is
 * loaded is part of every RSS ratio):
 * - `@tensorflow/tfjs-core` and `@tensorflow/tfjs-backend-cpu` through `require`. Node's ESM loader,
 *   when it imports a CommonJS file, reads and lexes the whole source for its export names before the
 *   CommonJS loader compiles it again; for tfjs's ~1 MB bundles that left ~17 MB more resident than a
 *   plain `require` (`node --expose-gc`: 88 MB after `import('@tensorflow/tfjs')`, 71 MB after
 *   `require`).
 * - Not the `@tensorflow/tfjs` union package: it also loads tfjs-layers, -converter, -data and
 *   -backend-webgl (~9 MB resident more), none of which lowrank uses in Node. tfjs-core's CommonJS
 *   bundle, however, registers neither the gradients nor the chained ops (`x.square()`); the union's
 *   bundle does, as module side effects on tfjs's global engine and Tensor class. So that bundle is
 *   evaluated here with those four packages replaced by empty modules: its side effects happen, the
 *   unused packages are never read. 62 MB resident after this module, against 88 MB before.
 *   `tfjs.test.ts` checks that every kernel the union gives a gradient has one here and that every
 *   chained op is present.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { compileFunction } from 'node:vm';
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfCpu from '@tensorflow/tfjs-backend-cpu';
import type * as TfWasm from '@tensorflow/tfjs-backend-wasm';

const nodeRequire = createRequire(import.meta.url);

/** Packages the union bundle requires that lowrank does not use in Node: empty modules instead. */
export const UNUSED_TFJS_PACKAGES: readonly string[] = [
  '@tensorflow/tfjs-layers',
  '@tensorflow/tfjs-converter',
  '@tensorflow/tfjs-data',
  '@tensorflow/tfjs-backend-webgl',
];

/** tfjs-core's API (ops, engine, kernel registry); the gradients and chained ops are registered. */
export const tfCore = nodeRequire('@tensorflow/tfjs-core') as typeof TfCore;
/** The cpu backend package (`MathBackendCPU`, its shared kernel implementations). */
export const tfCpu = nodeRequire('@tensorflow/tfjs-backend-cpu') as typeof TfCpu;

/**
 * Evaluates the union package's CommonJS bundle for its side effects (gradient and chained-op
 * registration), its unused dependencies stubbed. The bundle's own exports are dropped.
 */
function registerGradientsAndChainedOps(): void {
  const file = nodeRequire.resolve('@tensorflow/tfjs');
  const unionRequire = createRequire(file);
  const unused = new Set(UNUSED_TFJS_PACKAGES);
  const body = compileFunction(
    readFileSync(file, 'utf8'),
    ['exports', 'require', 'module', '__filename', '__dirname'],
    { filename: file },
  );
  const module = { exports: {} };
  const requireStubbed = (id: string): unknown => (unused.has(id) ? {} : unionRequire(id));
  body.call(module.exports, module.exports, requireStubbed, module, file, dirname(file));
}

registerGradientsAndChainedOps();

/**
 * The wasm backend package, loaded on first use (it is only needed when the native addon is absent
 * or `wasm` is asked for).
 *
 * @example
 * const wasm = loadTfWasm(); wasm.setWasmPaths(dir);
 */
export function loadTfWasm(): typeof TfWasm {
  return nodeRequire('@tensorflow/tfjs-backend-wasm') as typeof TfWasm;
}
