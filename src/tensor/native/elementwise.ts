/**
 * Elementwise kernels: binary ops with full broadcasting, comparisons, unary math, Select, Cast.
 * Codes match the enums in native/src/elementwise.cc.
 */
import { alloc, allocF32 } from './kernel.js';
import { tfCore } from '../tfjs.js';
import {
  elemBytes,
  f32,
  isF32,
  output,
  vals,
  type KernelArgs,
  type NativeKernelSpec,
  type TensorInfo,
} from './kernel.js';
import { broadcastStrides, collapse, int32, sizeOf } from './shape.js';
import type { NativeAddon } from './addon.js';

const BINARY: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  Pow: 6,
  SquaredDifference: 7,
};
const COMPARE: Record<string, number> = {
  Equal: 10,
  NotEqual: 11,
  Less: 12,
  LessEqual: 13,
  Greater: 14,
  GreaterEqual: 15,
};

function binary(name: string, op: number, compare: boolean): NativeKernelSpec {
  return {
    name,
    run: ({ inputs, backend }: KernelArgs, addon: NativeAddon) => {
      const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
      if (!isF32(backend, a) || !isF32(backend, b)) return null;
      const shape = tfCore.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const n = sizeOf(shape);
      const out = alloc(backend, compare ? 'bool' : 'float32', n) as Float32Array | Uint8Array;
      if (n > 0) {
        const c = collapse(shape, [broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)]);
        addon.binary(
          op,
          f32(backend, a),
          f32(backend, b),
          out,
          int32(c.shape),
          int32(c.strides[0]!),
          int32(c.strides[1]!),
        );
      }
      return output(backend, shape, compare ? 'bool' : 'float32', out);
    },
  };
}

type Params = (attrs: Record<string, unknown> | undefined) => [number, number];
const none: Params = () => [0, 0];
const alpha: Params = (attrs) => [Number(attrs?.alpha ?? 0), 0];
const clip: Params = (attrs) => [Number(attrs?.clipValueMin), Number(attrs?.clipValueMax)];

const UNARY: [string, number, Params][] = [
  ['Exp', 0, none],
  ['Log', 1, none],
  ['Log1p', 2, none],
  ['Sqrt', 3, none],
  ['Rsqrt', 4, none],
  ['Square', 5, none],
  ['Neg', 6, none],
  ['Abs', 7, none],
  ['Tanh', 8, none],
  ['Sigmoid', 9, none],
  ['Erf', 10, none],
  ['Relu', 11, none],
  ['Step', 12, alpha],
  ['Reciprocal', 13, none],
  ['Expm1', 14, none],
  ['Softplus', 15, none],
  ['Sign', 16, none],
  ['Relu6', 17, none],
  ['Elu', 18, none],
  ['LeakyRelu', 19, alpha],
  ['Sin', 20, none],
  ['Cos', 21, none],
  ['Floor', 22, none],
  ['Ceil', 23, none],
  ['ClipByValue', 24, clip],
];

function unary(name: string, op: number, params: Params): NativeKernelSpec {
  return {
    name,
    run: ({ inputs, backend, attrs }: KernelArgs, addon: NativeAddon) => {
      const x = inputs.x!;
      if (!isF32(backend, x)) return null;
      const out = allocF32(backend, sizeOf(x.shape));
      const [p, q] = params(attrs);
      addon.unary(op, f32(backend, x), out, p, q);
      return output(backend, [...x.shape], 'float32', out);
    },
  };
}

/** Select(condition, t, e): cond full-shape, or rank-1 choosing whole rows (tfjs semantics). */
const select: NativeKernelSpec = {
  name: 'Select',
  run: ({ inputs, backend }, addon) => {
    const { condition, t, e } = inputs as { condition: TensorInfo; t: TensorInfo; e: TensorInfo };
    if (!isF32(backend, t) || !isF32(backend, e) || elemBytes(backend, condition) !== 1) return null;
    const n = sizeOf(t.shape);
    const cn = sizeOf(condition.shape);
    if (cn === 0 || n % cn !== 0) return null;
    const out = allocF32(backend, n);
    addon.select(vals(backend, condition) as Uint8Array, f32(backend, t), f32(backend, e), out, n / cn);
    return output(backend, [...t.shape], 'float32', out);
  },
};

const DTYPE_CODE: Record<string, number> = { float32: 0, int32: 1, bool: 2 };

/** Cast between float32, int32 and bool (truncation toward zero, like the cpu kernel). */
const cast: NativeKernelSpec = {
  name: 'Cast',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const to = String(attrs?.dtype);
    const from = DTYPE_CODE[x.dtype];
    const toCode = DTYPE_CODE[to];
    if (from === undefined || toCode === undefined || from === toCode || elemBytes(backend, x) === 0)
      return null;
    const n = sizeOf(x.shape);
    const out = alloc(backend, to, n);
    addon.cast(vals(backend, x), out, from, toCode);
    return output(backend, [...x.shape], to, out);
  },
};

export const elementwiseKernels: NativeKernelSpec[] = [
  ...Object.entries(BINARY).map(([name, op]) => binary(name, op, false)),
  ...Object.entries(COMPARE).map(([name, op]) => binary(name, op, true)),
  ...UNARY.map(([name, op, params]) => unary(name, op, params)),
  select,
  cast,
];
