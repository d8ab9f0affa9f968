/**
 * Native kernels for AdaLoRA's per-step extras over all adapted matrices at once (issue 17):
 * `LowrankOrthReg` (the orthogonal regulariser and its gradient, native/src/adalora.cc) and
 * `LowrankScaleAll` (many tensors times one scalar, the regulariser's backward), whose inputs are
 * named `x0 … x{n−1}` (src/tensor/ops/orth_reg.ts wraps them in a customGrad); and per SVD layer
 * `LowrankSvdPrep` / `LowrankSvdPrepGrad`, the small factors of the adapter delta and their
 * gradients in one call each (src/tensor/ops/lora.ts `svdDelta`).
 */
import { allocF32, f32, output, type NativeKernelSpec, type TensorInfo } from './kernel.js';
import { sizeOf } from './shape.js';

export const ADALORA_KERNELS = {
  orthReg: 'LowrankOrthReg',
  scaleAll: 'LowrankScaleAll',
  svdPrep: 'LowrankSvdPrep',
  svdPrepGrad: 'LowrankSvdPrepGrad',
  tripletScores: 'LowrankTripletScores',
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

/** [r, in] A, [r, 1] E, [out, r] B, [1] ranknum: the shapes both SVD kernels take. */
function svdShapes(a: TensorInfo, e: TensorInfo, rn: TensorInfo, outR: TensorInfo): boolean {
  const [r, inF] = a.shape;
  return (
    a.shape.length === 2 &&
    e.shape.length === 2 &&
    e.shape[0] === r &&
    e.shape[1] === 1 &&
    outR.shape.length === 2 &&
    outR.shape[1] === r &&
    inF !== undefined &&
    sizeOf(rn.shape) === 1
  );
}

/**
 * LowrankSvdPrep {a [r, in], e [r, 1], b [out, r], ranknum [1]} attrs {scale} →
 * [left = a∘e [r, in], scaledB = (b·scale)/(ranknum + 1e-5) [out, r]], rounded as the composed
 * Multiply / Add / RealDiv kernels (native/src/adalora.cc).
 */
const svdPrep: NativeKernelSpec = {
  name: ADALORA_KERNELS.svdPrep,
  run: ({ inputs, backend, attrs }, addon) => {
    const { a, e, b, ranknum } = inputs;
    if (!a || !e || !b || !ranknum || !svdShapes(a, e, ranknum, b)) return null;
    const [r, inF] = a.shape as [number, number];
    const outF = b.shape[0]!;
    const left = allocF32(backend, r * inF);
    const scaledB = allocF32(backend, outF * r);
    addon.svdPrep(
      f32(backend, a),
      f32(backend, e),
      f32(backend, b),
      f32(backend, ranknum),
      left,
      scaledB,
      r,
      inF,
      outF,
      Number(attrs?.scale),
    );
    return [output(backend, [r, inF], 'float32', left), output(backend, [outF, r], 'float32', scaledB)];
  },
};

/**
 * LowrankSvdPrepGrad {dLeft [r, in], dScaledB [out, r], a, e, ranknum} attrs {scale} → [dA, dE, dB]
 * (tfjs's Multiply / RealDiv gradients; dE summed in the native Sum kernel's order).
 */
const svdPrepGrad: NativeKernelSpec = {
  name: ADALORA_KERNELS.svdPrepGrad,
  run: ({ inputs, backend, attrs }, addon) => {
    const { dLeft, dScaledB, a, e, ranknum } = inputs;
    if (!dLeft || !dScaledB || !a || !e || !ranknum || !svdShapes(a, e, ranknum, dScaledB)) return null;
    const [r, inF] = a.shape as [number, number];
    const outF = dScaledB.shape[0]!;
    const dA = allocF32(backend, r * inF);
    const dE = allocF32(backend, r);
    const dB = allocF32(backend, outF * r);
    addon.svdPrepGrad(
      f32(backend, dLeft),
      f32(backend, dScaledB),
      f32(backend, a),
      f32(backend, e),
      f32(backend, ranknum),
      dA,
      dE,
      dB,
      r,
      inF,
      outF,
      Number(attrs?.scale),
    );
    return [
      output(backend, [r, inF], 'float32', dA),
      output(backend, [r, 1], 'float32', dE),
      output(backend, [outF, r], 'float32', dB),
    ];
  },
};

/**
 * LowrankTripletScores {i0 …, u0 … (optional)} attrs {kinds: 'E'/'A'/'B' per input, groupStart:
 * first input of each group} → one [r] score per group: s(E) + mean_j s(A)_ij + mean_o s(B)_oi in
 * the inputs' order, s = i·u (or i without u), rounded as the composed Multiply / Mean / Add kernels.
 */
const tripletScoresKernel: NativeKernelSpec = {
  name: ADALORA_KERNELS.tripletScores,
  run: ({ inputs, backend, attrs }, addon) => {
    const ipt = numbered(inputs, 'i');
    const unc = numbered(inputs, 'u');
    const kinds = String(attrs?.kinds ?? '');
    const groupStart = (attrs?.groupStart ?? []) as number[];
    if (kinds.length !== ipt.length || (unc.length > 0 && unc.length !== ipt.length)) return null;
    if (ipt.some((t) => t.shape.length !== 2) || groupStart.some((g) => kinds[g] !== 'E')) return null;
    const outs = groupStart.map((g) => allocF32(backend, ipt[g]!.shape[0]!));
    addon.tripletScores(
      ipt.map((t) => f32(backend, t)),
      unc.length > 0 ? unc.map((t) => f32(backend, t)) : null,
      Uint8Array.from(kinds, (k) => (k === 'E' ? 0 : k === 'A' ? 1 : 2)),
      Int32Array.from(ipt, (t) => t.shape[0]!),
      Int32Array.from(ipt, (t) => t.shape[1]!),
      Int32Array.from(groupStart),
      outs,
    );
    return groupStart.map((g, i) => output(backend, [ipt[g]!.shape[0]!], 'float32', outs[i]!));
  },
};

export const adaloraKernels: NativeKernelSpec[] = [
  orthReg,
  scaleAll,
  svdPrep,
  svdPrepGrad,
  tripletScoresKernel,
];
