/**
 * The adapted linear layer's kernels (native/src/adapter.cc), run by `adapterLinear` in
 * src/tensor/ops/adapter_linear.ts:
 *
 * - `LowrankAdapterLinear` {x [N, in], w [out, in] (or [in, out] with wInOut), bias? [out],
 *   left [r, in], b [out, r]} attrs {wInOut, bScale, dropout, keep, states, chunk} (Alea
 *   substreams, `aleaStreams` in src/tensor/ops/dropout.ts); the delta's right factor is b·bScale
 *   → [y [N, out], h [N, r], mask (bool [N, in], only with dropout)]
 * - `LowrankAdapterLinearGrad` {dy, x, w, h, left, b, mask?} attrs {wInOut, bScale, keep}
 *   → [dx [N, in], dLeft [r, in], db [out, r]]
 */
import {
  alloc,
  allocF32,
  f32,
  isF32,
  output,
  vals,
  type NativeKernelSpec,
  type TensorInfo,
} from './kernel.js';

export const ADAPTER_KERNELS = {
  forward: 'LowrankAdapterLinear',
  backward: 'LowrankAdapterLinearGrad',
} as const;

interface Dims {
  rows: number;
  inF: number;
  outF: number;
  r: number;
}

/** The layer's sizes when every operand is a float32 matrix of matching shape, else null. */
function dims(
  x: TensorInfo | undefined,
  w: TensorInfo | undefined,
  left: TensorInfo | undefined,
  b: TensorInfo | undefined,
  wInOut: boolean,
): Dims | null {
  if (!x || !w || !left || !b) return null;
  if ([x, w, left, b].some((t) => t.shape.length !== 2)) return null;
  const [rows, inF] = x.shape as [number, number];
  const [r] = left.shape as [number, number];
  const outF = b.shape[0]!;
  const [wIn, wOut] = wInOut ? w.shape : [w.shape[1], w.shape[0]];
  if (wIn !== inF || wOut !== outF || left.shape[1] !== inF || b.shape[1] !== r) return null;
  return { rows, inF, outF, r };
}

const forward: NativeKernelSpec = {
  name: ADAPTER_KERNELS.forward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { x, w, bias, left, b } = inputs as Record<string, TensorInfo | undefined>;
    const wInOut = attrs?.wInOut === true;
    const d = dims(x, w, left, b, wInOut);
    if (!d || ![x, w, left, b, bias].every((t) => t === undefined || isF32(backend, t))) return null;
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== d.outF)) return null;
    const drop = attrs?.dropout === true;
    const y = allocF32(backend, d.rows * d.outF);
    const h = allocF32(backend, d.rows * d.r);
    const mask = drop ? (alloc(backend, 'bool', d.rows * d.inF) as Uint8Array) : null;
    addon.adapterForward(
      f32(backend, x!),
      f32(backend, w!),
      bias ? f32(backend, bias) : null,
      f32(backend, left!),
      f32(backend, b!),
      y,
      h,
      mask,
      d.rows,
      d.inF,
      d.outF,
      d.r,
      wInOut ? 1 : 0,
      Number(attrs?.keep ?? 1),
      mask ? Float64Array.from(attrs?.states as number[]) : null,
      Number(attrs?.chunk ?? 1),
      Number(attrs?.bScale ?? 1),
    );
    const outs = [
      output(backend, [d.rows, d.outF], 'float32', y),
      output(backend, [d.rows, d.r], 'float32', h),
    ];
    if (mask) outs.push(output(backend, [d.rows, d.inF], 'bool', mask));
    return outs;
  },
};

const backward: NativeKernelSpec = {
  name: ADAPTER_KERNELS.backward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { dy, x, w, h, left, b, mask } = inputs as Record<string, TensorInfo | undefined>;
    const wInOut = attrs?.wInOut === true;
    const d = dims(x, w, left, b, wInOut);
    if (!d || !dy || !h || ![dy, x, w, h, left, b].every((t) => isF32(backend, t))) return null;
    const dx = allocF32(backend, d.rows * d.inF);
    const dLeft = allocF32(backend, d.r * d.inF);
    const db = allocF32(backend, d.outF * d.r);
    addon.adapterBackward(
      f32(backend, dy),
      f32(backend, x!),
      f32(backend, w!),
      mask ? (vals(backend, mask) as Uint8Array) : null,
      f32(backend, h),
      f32(backend, left!),
      f32(backend, b!),
      dx,
      dLeft,
      db,
      d.rows,
      d.inF,
      d.outF,
      d.r,
      wInOut ? 1 : 0,
      Number(attrs?.keep ?? 1),
      Number(attrs?.bScale ?? 1),
    );
    return [
      output(backend, [d.rows, d.inF], 'float32', dx),
      output(backend, [d.r, d.inF], 'float32', dLeft),
      output(backend, [d.outF, d.r], 'float32', db),
    ];
  },
};

export const adapterKernels: NativeKernelSpec[] = [forward, backward];
