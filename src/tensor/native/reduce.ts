/**
 * Reductions over any axes (Sum, Mean, Max, Min, Prod, ArgMax, ArgMin) and Softmax.
 * A reduction over a contiguous block of axes runs in place as [outer, R, inner]; other axis sets
 * are first transposed (natively) so the reduced axes come last.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';
import {
  alloc,
  allocF32,
  f32,
  isF32,
  output,
  type KernelArgs,
  type NativeKernelSpec,
  type TensorInfo,
} from './kernel.js';
import { collapse, int32, normAxes, sizeOf, stridesOf } from './shape.js';

const REDUCE: [string, number, string][] = [
  ['Sum', 0, 'axis'],
  ['Mean', 1, 'axis'],
  ['Max', 2, 'reductionIndices'],
  ['Min', 3, 'axis'],
  ['Prod', 4, 'axis'],
];

/** Moves `axes` of a float32 tensor to the end (returns the data, outer size and reduced size). */
function moveAxesLast(addon: NativeAddon, x: Float32Array, shape: number[], axes: number[]) {
  const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const perm = [...kept, ...axes];
  const outShape = perm.map((p) => shape[p]!);
  const src = stridesOf(shape);
  const c = collapse(outShape, [perm.map((p) => src[p]!), stridesOf(outShape)]);
  const moved = new Float32Array(x.length); // scratch, not tensor data: outside the pool
  addon.copy(x, moved, int32(c.shape), int32(c.strides[0]!), 0, int32(c.strides[1]!), 0, 4);
  return moved;
}

/** [outer, R, inner] view of `shape` reduced over sorted `axes`, transposing when not contiguous. */
function reductionView(addon: NativeAddon, x: Float32Array, shape: number[], axes: number[]) {
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  const R = sizeOf(axes.map((a) => shape[a]!));
  if (contiguous) {
    const first = axes[0] ?? shape.length;
    const outer = sizeOf(shape.slice(0, first));
    return { data: x, outer, R, inner: sizeOf(shape) / Math.max(1, outer * R) };
  }
  return { data: moveAxesLast(addon, x, shape, axes), outer: sizeOf(shape) / R, R, inner: 1 };
}

function reducedShape(shape: number[], axes: number[], keepDims: boolean): number[] {
  return keepDims
    ? shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : shape.filter((_, i) => !axes.includes(i));
}

function reduction(name: string, op: number, axisAttr: string): NativeKernelSpec {
  return {
    name,
    run: ({ inputs, backend, attrs }: KernelArgs, addon: NativeAddon) => {
      const x = inputs.x!;
      if (!isF32(backend, x) || sizeOf(x.shape) === 0) return null;
      const axes = normAxes(attrs?.[axisAttr] as number | number[] | undefined, x.shape.length);
      const shape = reducedShape(x.shape, axes, attrs?.keepDims === true);
      const view = reductionView(addon, f32(backend, x), x.shape, axes);
      const out = allocF32(backend, view.outer * view.inner);
      addon.reduce(op, view.data, out, view.outer, view.R, view.inner);
      return output(backend, shape, 'float32', out);
    },
  };
}

function argReduction(name: string, op: number): NativeKernelSpec {
  return {
    name,
    run: ({ inputs, backend, attrs }: KernelArgs, addon: NativeAddon) => {
      const x = inputs.x!;
      if (!isF32(backend, x) || sizeOf(x.shape) === 0) return null;
      const axes = normAxes(attrs?.axis as number | number[], x.shape.length);
      if (axes.length !== 1) return null;
      const shape = reducedShape(x.shape, axes, false);
      const view = reductionView(addon, f32(backend, x), x.shape, axes);
      const out = alloc(backend, 'int32', view.outer * view.inner) as Int32Array;
      addon.reduce(op, view.data, out, view.outer, view.R, view.inner);
      return output(backend, shape, 'int32', out);
    },
  };
}

/** Softmax over the last axis (tfjs only supports that axis). */
function softmax(backend: MathBackendCPU, addon: NativeAddon, logits: TensorInfo): TensorInfo | null {
  if (!isF32(backend, logits) || logits.shape.length === 0) return null;
  const cols = logits.shape[logits.shape.length - 1]!;
  const n = sizeOf(logits.shape);
  const out = allocF32(backend, n);
  if (n > 0) addon.softmax(f32(backend, logits), out, n / cols, cols, false);
  return output(backend, [...logits.shape], 'float32', out);
}

export const reduceKernels: NativeKernelSpec[] = [
  ...REDUCE.map(([name, op, attr]) => reduction(name, op, attr)),
  argReduction('ArgMax', 5),
  argReduction('ArgMin', 6),
  {
    name: 'Softmax',
    run: ({ inputs, backend, attrs }, addon) => {
      const dim = Number(attrs?.dim ?? -1);
      const rank = inputs.logits!.shape.length;
      if (dim !== -1 && dim !== rank - 1) return null;
      return softmax(backend, addon, inputs.logits!);
    },
  },
];
