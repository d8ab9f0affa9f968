/**
 * Kernels the tfjs `wasm` backend lacks or gets wrong (tfjs 4.22), fixed so training runs there.
 * - `UnsortedSegmentSum` is missing (docs/design.md "Backends"): it is the gradient of `gather`, which
 * decoder
 *   classification needs (the last real token's hidden state is gathered per row). The fallback runs
 *   in JavaScript on the backend's own memory; it is registered only where the backend has none.
 * - `_FusedMatMul` with either operand transposed is wrong whenever the output has more than one row
 *   and a bias is given (max error ~0.7 on 6×32·(32×32)ᵀ), and also with a fused `relu` and no bias
 *   at larger shapes (error 1.5 on 24×128·(512×128)ᵀ, found by the conformance suite); the
 *   untransposed path and the plain product are right. `linear()` takes the biased path for every
 *   trainable biased layer. The wrapper below keeps the wasm kernel for the plain product and adds
 *   the bias and activation with the backend's own `Add` and activation kernels.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import { tfCore as tfc } from './tfjs.js';

interface WasmLikeBackend {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(
    shape: number[],
    dtype: TfCore.DataType,
    memoryOffset?: number,
    values?: TfCore.TypedArray,
  ): TfCore.TensorInfo;
}

/**
 * `UnsortedSegmentSum(x, segmentIds, numSegments)`: `out[s, ...] = Σ_{i: ids[i] = s} x[i, ...]`, ids
 * outside `[0, numSegments)` dropped (TensorFlow's semantics). `segmentIds` indexes x's leading dims.
 */
function unsortedSegmentSum(args: {
  inputs: TfCore.NamedTensorInfoMap;
  backend: unknown;
  attrs?: TfCore.NamedAttrMap;
}): TfCore.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: TfCore.TensorInfo; segmentIds: TfCore.TensorInfo };
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

interface WasmDisposer {
  disposeData(dataId: unknown): void;
}
type KernelArgs = { inputs: TfCore.NamedTensorInfoMap; backend: unknown; attrs?: TfCore.NamedAttrMap };
type RawKernel = (args: KernelArgs) => TfCore.TensorInfo | TfCore.TensorInfo[];

/** tfjs activation names of `fused.matMul` → the unary kernel that applies each one after the bias. */
const ACTIVATION_KERNELS: Record<string, string> = {
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  sigmoid: 'Sigmoid',
  leakyrelu: 'LeakyRelu',
  prelu: 'Prelu',
};

/** Marks our wrapper so registering twice does not wrap the wrapper. */
const WRAPPED = Symbol.for('lowrank.fusedMatMulBiasFix');

function kernelOf(name: string, backendName: string): RawKernel {
  const k = tfc.getKernel(name, backendName);
  if (!k) throw new Error(`backend ${backendName} has no ${name} kernel`);
  return k.kernelFunc as unknown as RawKernel;
}

function one(out: TfCore.TensorInfo | TfCore.TensorInfo[]): TfCore.TensorInfo {
  return Array.isArray(out) ? out[0]! : out;
}

/**
 * `_FusedMatMul` for a backend whose own kernel mishandles a bias when an operand is transposed:
 * the backend's kernel computes act(A·B) only when that path is right; otherwise it computes A·B
 * (no bias, no activation), then `Add` and the activation run as separate kernels. Same result as
 * tfjs's cpu kernel up to float32 rounding of one extra pass.
 */
function fusedMatMulBiasFix(backendName: string, original: RawKernel): RawKernel {
  const fixed: RawKernel = (args) => {
    const { bias, preluActivationWeights } = args.inputs as Record<string, TfCore.TensorInfo | undefined>;
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean; activation?: string };
    const act = attrs.activation ?? 'linear';
    if ((!bias && act === 'linear') || (!attrs.transposeA && !attrs.transposeB)) return original(args);
    const backend = args.backend as WasmDisposer;
    const { a, b } = args.inputs as { a: TfCore.TensorInfo; b: TfCore.TensorInfo };
    const product = one(original({ ...args, inputs: { a, b }, attrs: { ...attrs, activation: 'linear' } }));
    const withBias = bias
      ? one(kernelOf('Add', backendName)({ inputs: { a: product, b: bias }, backend }))
      : product;
    if (bias) backend.disposeData(product.dataId);
    if (act === 'linear') return withBias;
    const kernel = ACTIVATION_KERNELS[act];
    if (!kernel) {
      backend.disposeData(withBias.dataId);
      throw new Error(`_FusedMatMul: activation "${act}" is not supported`);
    }
    const inputs: TfCore.NamedTensorInfoMap =
      act === 'prelu' ? { x: withBias, alpha: preluActivationWeights! } : { x: withBias };
    const extra: TfCore.NamedAttrMap =
      act === 'leakyrelu' ? { alpha: (args.attrs as { leakyreluAlpha?: number }).leakyreluAlpha ?? 0.2 } : {};
    const out = one(kernelOf(kernel, backendName)({ inputs, backend, attrs: extra }));
    backend.disposeData(withBias.dataId);
    return out;
  };
  (fixed as unknown as Record<symbol, boolean>)[WRAPPED] = true;
  return fixed;
}

/**
 * Replaces `backendName`'s `_FusedMatMul` with {@link fusedMatMulBiasFix} around it (idempotent).
 * Used for wasm, and for any backend where the conformance suite finds the same bug.
 *
 * @example
 * wrapFusedMatMulBias('wasm'); // tf.fused.matMul({ a, b, transposeB: true, bias }) is right on wasm
 */
export function wrapFusedMatMulBias(backendName: string): void {
  const k = tfc.getKernel('_FusedMatMul', backendName);
  if (!k || (k.kernelFunc as unknown as Record<symbol, boolean>)[WRAPPED]) return;
  tfc.unregisterKernel('_FusedMatMul', backendName);
  tfc.registerKernel({
    ...k,
    kernelFunc: fusedMatMulBiasFix(
      backendName,
      k.kernelFunc as unknown as RawKernel,
    ) as unknown as TfCore.KernelFunc,
  });
}

/**
 * Registers the fallbacks for backend `wasm` (idempotent; a kernel tfjs already has is left alone).
 *
 * @example
 * registerWasmFallbackKernels(); await tf.setBackend('wasm'); // gather gradients and biased linears now work
 */
export function registerWasmFallbackKernels(): void {
  if (!tfc.getKernel('UnsortedSegmentSum', 'wasm')) {
    tfc.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSum as unknown as TfCore.KernelFunc,
    });
  }
  wrapFusedMatMulBias('wasm');
}
