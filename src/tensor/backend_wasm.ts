/**
 * The tfjs `wasm` backend as lowrank's fallback when the native addon is not built: loads the
 * .wasm binaries from node_modules (no network) and registers the kernels tfjs-backend-wasm 4.22
 * lacks but a training step needs (UnsortedSegmentSum: the gradient of every embedding lookup).
 */
import * as tfc from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

type WasmModule = typeof import('@tensorflow/tfjs-backend-wasm');
type WasmBackend = import('@tensorflow/tfjs-backend-wasm').BackendWasm;

/** UnsortedSegmentSum for wasm, in JS over the wasm heap views (rows of `inner` floats). */
function unsortedSegmentSum(args: {
  inputs: tfc.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tfc.NamedAttrMap;
}): tfc.TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x!;
  const ids = backend.readSync(args.inputs.segmentIds!.dataId) as Int32Array;
  const data = backend.readSync(x.dataId) as Float32Array;
  const numSegments = Number(args.attrs?.numSegments);
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const sums = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const seg = ids[i]!;
    if (seg < 0 || seg >= numSegments) continue; // dropped, as in TensorFlow
    for (let c = 0; c < inner; c++) sums[seg * inner + c]! += data[i * inner + c]!;
  }
  return backend.makeOutput([numSegments, ...x.shape.slice(1)], 'float32', undefined, sums);
}

let loaded: Promise<string | undefined> | undefined;

async function load(): Promise<string | undefined> {
  let wasm: WasmModule;
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    return `@tensorflow/tfjs-backend-wasm failed to load: ${(e as Error).message}`;
  }
  const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json');
  wasm.setWasmPaths(join(dirname(pkg), 'dist') + '/');
  const have = new Set(tfc.getKernelsForBackend('wasm').map((k) => k.kernelName));
  if (!have.has('UnsortedSegmentSum'))
    tfc.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSum as unknown as tfc.KernelFunc,
    });
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
