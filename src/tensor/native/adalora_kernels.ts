/**
 * Native kernels for AdaLoRA's per-step extras over all adapted matrices at once (issue 17):
 * `LowrankOrthReg` (the orthogonal regulariser and its gradient, native/src/adalora.cc) and
 * `LowrankScaleAll` (many tensors times one scalar, the regulariser's backward). Inputs are named
 * `x0 … x{n−1}`; the ops in src/tensor/ops/orth_reg.ts wrap them in a customGrad.
 */
import { allocF32, f32, output, type NativeKernelSpec, type TensorInfo } from './kernel.js';
import { sizeOf } from './shape.js';

export const ADALORA_KERNELS = {
  orthReg: 'LowrankOrthReg',
  scaleAll: 'LowrankScaleAll',
} as const;

/** The numbered inputs x0, x1, … in order. */
function numbered(inputs: Record<string, TensorInfo | undefined>, prefix: string): TensorInfo[] {
  const out: TensorInfo[] = [];
  for (let i = 0; inputs[`${prefix}${i}`] !== undefined; i++) out.push(inputs[`${prefix}${i}`]!);
  return out;
}

/**
 * LowrankOrthReg {x0 … x{n−1}} attrs {kinds: string of 'A'/'B' per input} → [R scalar, ∂R/∂x0, …]:
 * R = (1/n)·Σ ‖x xᵀ − I‖_F ('A', x [r, in]) or ‖xᵀ x − I‖_F ('B', x [out, r]).
 */
const orthReg: NativeKernelSpec = {
  name: ADALORA_KERNELS.orthReg,
  run: ({ inputs, backend, attrs }, addon) => {
    const xs = numbered(inputs, 'x');
    const kinds = String(attrs?.kinds ?? '');
    if (kinds.length !== xs.length || xs.some((x) => x.shape.length !== 2)) return null;
    const grads = xs.map((x) => allocF32(backend, sizeOf(x.shape)));
    const value = addon.orthReg(
      xs.map((x) => f32(backend, x)),
      Int32Array.from(xs, (x) => x.shape[0]!),
      Int32Array.from(xs, (x) => x.shape[1]!),
      Uint8Array.from(kinds, (k) => (k === 'A' ? 1 : 0)),
      grads,
    );
    return [
      output(backend, [], 'float32', Float32Array.of(value)),
      ...xs.map((x, i) => output(backend, [...x.shape], 'float32', grads[i]!)),
    ];
  },
};

/** LowrankScaleAll {s scalar, x0 … x{n−1}} → [x0·s, …] (f32 products, as Multiply). */
const scaleAll: NativeKernelSpec = {
  name: ADALORA_KERNELS.scaleAll,
  run: ({ inputs, backend }, addon) => {
    const xs = numbered(inputs, 'x');
    const s = inputs.s;
    if (!s || sizeOf(s.shape) !== 1) return null;
    const ys = xs.map((x) => allocF32(backend, sizeOf(x.shape)));
    addon.scaleAll(
      xs.map((x) => f32(backend, x)),
      ys,
      f32(backend, s)[0]!,
    );
    return xs.map((x, i) => output(backend, [...x.shape], 'float32', ys[i]!));
  },
};

export const adaloraKernels: NativeKernelSpec[] = [orthReg, scaleAll];
