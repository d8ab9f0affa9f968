/**
 * Fixes for tfjs's GPU backends (tfjs 4.22), registered by the browser build (backend_browser.ts).
 *
 * WebGPU's `AddN` binds every input as a storage buffer in one shader; with N inputs plus the output
 * it needs N + 1 bindings, and a device grants `maxStorageBuffersPerShaderStage` (8 by default, also on
 * real GPUs unless requested). With 8 or more inputs the pipeline is invalid and the kernel silently
 * returns a stale buffer (AdaLoRA's loss read 0.0000 at most steps). tfjs's own `Concat` already
 * splits at that limit; the wrapper here does the same for `AddN`: sums of at most `limit − 1` inputs,
 * then a sum of the partial sums. WebGL's `AddN` already splits at its texture limit.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import { tfCore as tfc } from './tfjs.js';

type KernelArgs = { inputs: TfCore.NamedTensorInfoMap; backend: unknown; attrs?: TfCore.NamedAttrMap };
type RawKernel = (args: KernelArgs) => TfCore.TensorInfo;

interface DisposingBackend {
  disposeData(dataId: unknown): void;
}

/** Storage buffers WebGPU grants a shader stage when nothing more is requested (WebGPU spec default). */
export const WEBGPU_DEFAULT_STORAGE_BUFFERS = 8;

const SPLIT = Symbol.for('lowrank.addNSplit');

/**
 * The most inputs one `AddN` shader may take on `backend`: the device's storage-buffer limit minus
 * the output's binding (the spec default when the backend exposes no device).
 */
export function webgpuMaxAddNInputs(backend: unknown): number {
  const limits = (backend as { device?: { limits?: { maxStorageBuffersPerShaderStage?: number } } }).device
    ?.limits;
  return (limits?.maxStorageBuffersPerShaderStage ?? WEBGPU_DEFAULT_STORAGE_BUFFERS) - 1;
}

/**
 * Sums `inputs` with `kernel` taking at most `max` inputs per call (a balanced tree of partial sums;
 * float32 sums in a different order than one pass, within rounding). Intermediates are disposed.
 */
export function addNSplit(
  inputs: TfCore.TensorInfo[],
  backend: DisposingBackend,
  max: number,
  kernel: RawKernel,
): TfCore.TensorInfo {
  if (max < 2) throw new Error(`AddN split: at least 2 inputs per shader are needed (got ${max})`);
  if (inputs.length <= max)
    return kernel({ inputs: inputs as unknown as TfCore.NamedTensorInfoMap, backend });
  const partial: TfCore.TensorInfo[] = [];
  for (let i = 0; i < inputs.length; i += max) {
    const chunk = inputs.slice(i, i + max);
    partial.push(
      chunk.length === 1
        ? chunk[0]!
        : kernel({ inputs: chunk as unknown as TfCore.NamedTensorInfoMap, backend }),
    );
  }
  const out = addNSplit(partial, backend, max, kernel);
  for (const p of partial) if (!inputs.includes(p)) backend.disposeData(p.dataId);
  return out;
}

/**
 * Wraps `backendName`'s `AddN` so no single shader takes more inputs than `maxInputs(backend)`
 * (idempotent; nothing happens when the backend has no `AddN`).
 *
 * @example
 * splitAddN('webgpu', webgpuMaxAddNInputs); // tf.addN of 30 gradients is right on WebGPU
 */
export function splitAddN(backendName: string, maxInputs: (backend: unknown) => number): void {
  const k = tfc.getKernel('AddN', backendName);
  if (!k || (k.kernelFunc as unknown as Record<symbol, boolean>)[SPLIT]) return;
  const original = k.kernelFunc as unknown as RawKernel;
  const split: RawKernel = (args) =>
    addNSplit(
      args.inputs as unknown as TfCore.TensorInfo[],
      args.backend as DisposingBackend,
      maxInputs(args.backend),
      original,
    );
  (split as unknown as Record<symbol, boolean>)[SPLIT] = true;
  tfc.unregisterKernel('AddN', backendName);
  tfc.registerKernel({ ...k, kernelFunc: split as unknown as TfCore.KernelFunc });
}

/**
 * Registers the GPU fixes (call once after the webgpu backend's module is imported).
 * @example registerGpuKernelFixes();
 */
export function registerGpuKernelFixes(): void {
  splitAddN('webgpu', webgpuMaxAddNInputs);
}
