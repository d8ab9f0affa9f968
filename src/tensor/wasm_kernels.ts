/**
 * Kernels the tfjs `wasm` backend lacks (tfjs 4.22), added so training runs there. DESIGN.md §2 notes
 * the missing `UnsortedSegmentSum`: it is the gradient of `gather`, which decoder classification needs
 * (the last real token's hidden state is gathered per row). The fallback runs in JavaScript on the
 * backend's own memory; it is registered only where the backend has no kernel of that name.
 */
import * as tfc from '@tensorflow/tfjs';

interface WasmLikeBackend {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(
    shape: number[],
    dtype: tfc.DataType,
    memoryOffset?: number,
    values?: tfc.TypedArray,
  ): tfc.TensorInfo;
}

/**
 * `UnsortedSegmentSum(x, segmentIds, numSegments)`: `out[s, ...] = Σ_{i: ids[i] = s} x[i, ...]`, ids
 * outside `[0, numSegments)` dropped (TensorFlow's semantics). `segmentIds` indexes x's leading dims.
 */
function unsortedSegmentSum(args: {
  inputs: tfc.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tfc.NamedAttrMap;
}): tfc.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tfc.TensorInfo; segmentIds: tfc.TensorInfo };
  const numSegments = (args.attrs as { numSegments: number }).numSegments;
  const backend = args.backend as WasmLikeBackend;
  const xs = backend.readSync(x.dataId);
  const ids = backend.readSync(segmentIds.dataId);
  const lead = segmentIds.shape.length;
  const outShape = [numSegments, ...x.shape.slice(lead)];
  const inner = x.shape.slice(lead).reduce((a, b) => a * b, 1);
  const out =
    x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    for (let j = 0; j < inner; j++) out[s * inner + j]! += xs[i * inner + j]!;
  }
  return backend.makeOutput(outShape, x.dtype, undefined, out);
}

/**
 * Registers the fallbacks for backend `wasm` (idempotent; a kernel tfjs already has is left alone).
 *
 * @example
 * registerWasmFallbackKernels(); await tf.setBackend('wasm'); // gather gradients now work
 */
export function registerWasmFallbackKernels(): void {
  if (!tfc.getKernel('UnsortedSegmentSum', 'wasm')) {
    tfc.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSum as unknown as tfc.KernelFunc,
    });
  }
}
