/**
 * BatchMatMul and _FusedMatMul on cblas_sgemm: every transpose combination, broadcast batch dims,
 * and bias + activation fused into the GEMM's output pass.
 */
import { tfCore } from '../tfjs.js';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';
import {
  allocF32,
  f32,
  isF32,
  output,
  type KernelArgs,
  type NativeKernelSpec,
  type TensorInfo,
} from './kernel.js';
import { broadcastStrides, sizeOf, stridesOf } from './shape.js';

/** Activation codes of native/src/gemm.cc; prelu (a tensor parameter) stays on the cpu kernel. */
const ACTIVATIONS: Record<string, number> = {
  linear: 0,
  relu: 1,
  relu6: 2,
  elu: 3,
  leakyrelu: 4,
  sigmoid: 5,
};

/** Offsets of each output batch's A and B blocks, following batch-dim broadcasting. */
function batchOffsets(aBatch: number[], bBatch: number[], aBlock: number, bBlock: number) {
  const outBatch = tfCore.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  const count = sizeOf(outBatch);
  const as = broadcastStrides(aBatch, outBatch);
  const bs = broadcastStrides(bBatch, outBatch);
  const outStrides = stridesOf(outBatch);
  const aOff = new Int32Array(count);
  const bOff = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let ao = 0;
    let bo = 0;
    for (let d = 0; d < outBatch.length; d++) {
      const idx = Math.floor(i / outStrides[d]!) % outBatch[d]!;
      ao += idx * as[d]!;
      bo += idx * bs[d]!;
    }
    aOff[i] = ao * aBlock;
    bOff[i] = bo * bBlock;
  }
  return { outBatch, aOff, bOff };
}

/** The bias as a length-n row or a scalar, or undefined when its shape needs general broadcasting. */
function biasRow(
  backend: MathBackendCPU,
  bias: TensorInfo | undefined,
  n: number,
): Float32Array | null | undefined {
  if (bias == null) return null;
  if (!isF32(backend, bias)) return undefined;
  const size = sizeOf(bias.shape);
  const rowLike = size === n && bias.shape.length >= 1 && bias.shape[bias.shape.length - 1] === n;
  return size === 1 || rowLike ? f32(backend, bias) : undefined;
}

function matMul(
  { inputs, backend, attrs }: KernelArgs,
  addon: NativeAddon,
  bias: TensorInfo | undefined,
  activation: string,
): TensorInfo | null {
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  const code = ACTIVATIONS[activation];
  if (!isF32(backend, a) || !isF32(backend, b) || code === undefined) return null;
  const ta = attrs?.transposeA === true;
  const tb = attrs?.transposeB === true;
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = ta ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const k = ta ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const n = tb ? b.shape[br - 2]! : b.shape[br - 1]!;
  const row = biasRow(backend, bias, n);
  if (row === undefined) return null;
  const { outBatch, aOff, bOff } = batchOffsets(a.shape.slice(0, -2), b.shape.slice(0, -2), m * k, k * n);
  const out = allocF32(backend, aOff.length * m * n);
  const alpha = typeof attrs?.leakyreluAlpha === 'number' ? attrs.leakyreluAlpha : 0.2;
  addon.batchMatMul(f32(backend, a), f32(backend, b), out, m, n, k, ta, tb, aOff, bOff, row, code, alpha);
  return output(backend, [...outBatch, m, n], 'float32', out);
}

export const matmulKernels: NativeKernelSpec[] = [
  { name: 'BatchMatMul', run: (args, addon) => matMul(args, addon, undefined, 'linear') },
  {
    name: '_FusedMatMul',
    run: (args, addon) => {
      if (args.inputs.preluActivationWeights != null) return null;
      const act = typeof args.attrs?.activation === 'string' ? args.attrs.activation : 'linear';
      return matMul(args, addon, args.inputs.bias, act);
    },
  },
];
