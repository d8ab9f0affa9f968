import { tf, type Tensor } from '../tf.js';
import { ADALORA_KERNELS } from '../native/adalora_kernels.js';
import { nativeFused, runFused } from './fused.js';

export interface LoraDeltaOptions {
  /** AdaLoRA's singular values E [r, 1]: the path uses A⊙E instead of A. */
  e?: Tensor | null;
  /**
   * AdaLoRA's divisor: the path is scaled by `scale / (ranknum + 1e-5)` (PEFT SVDLinear), computed
   * as float32 ops like torch's; a tensor (the layer's `ranknum` buffer, shape [1]) or a number.
   */
  ranknum?: Tensor | number | null;
}

/** PEFT adds this to `ranknum` before dividing (SVDLinear.forward). */
const RANKNUM_EPS = 1e-5;

/**
 * The LoRA adapter path `x·Aᵀ·Bᵀ·s` (PEFT `lora_B(lora_A(dropout(x))) * scaling`) and AdaLoRA's
 * `x·(A⊙E)ᵀ·Bᵀ·s/(ranknum + 1e-5)`, as two GEMM kernels. The scale is folded into the small
 * [out, r] factor instead of the [N, out] activation, which saves a full elementwise pass per
 * scale factor in the forward and again in the backward of every adapted layer (AdaLoRA's
 * multiply-then-divide cost four [N, out] passes per layer); gradients flow to x, A, B (and E)
 * through tfjs autograd. The results equal PEFT's up to float32 rounding order. AdaLoRA's path on
 * `native` is {@link svdDelta} (one op on the tape, the small factors in one kernel each way).
 * x [.., in], A [r, in], B [out, r] → [.., out]. Dropout is the caller's (applied to x first).
 *
 * @example
 * const y = tf.add(linear(x, w, b), loraDelta(dropout(x), loraA, loraB, alpha / r));
 */
export function loraDelta(
  x: Tensor,
  a: Tensor,
  b: Tensor,
  scale: number,
  opts: LoraDeltaOptions = {},
): Tensor {
  return tf.tidy(() => {
    const inFeatures = x.shape[x.shape.length - 1]!;
    const outFeatures = b.shape[0]!;
    const lead = x.shape.slice(0, -1);
    const { ranknum } = opts;
    if (opts.e && ranknum instanceof tf.Tensor && nativeFused(x, a, b, opts.e, ranknum))
      return svdDelta(x, a, opts.e, b, ranknum, scale);
    const scaledB =
      ranknum == null
        ? tf.mul(b, tf.scalar(scale))
        : tf.div(tf.mul(b, tf.scalar(scale)), tf.add(ranknum, tf.scalar(RANKNUM_EPS)));
    const left = opts.e ? tf.mul(a, opts.e) : a; // [r, in]
    const h = tf.matMul(x.reshape([-1, inFeatures]), left, false, true); // [N, r]
    const y = tf.matMul(h, scaledB, false, true); // [N, out]
    return y.reshape([...lead, outFeatures]);
  });
}

/**
 * AdaLoRA's delta `x·(A∘E)ᵀ·Bᵀ·s/(ranknum + 1e-5)` on `native` as one customGrad op: the forward is
 * one `LowrankSvdPrep` call (left = A∘E, scaledB = (B·s)/(ranknum + 1e-5)) and the two GEMMs; the
 * backward is the four GEMMs tfjs's BatchMatMul gradient would run and one `LowrankSvdPrepGrad` call
 * for dA, dE, dB. Every value is rounded as in the composed path of {@link loraDelta} (bit-identical;
 * tests/native_svd_delta.test.ts), with ~10 kernel calls and tape entries fewer per layer and step.
 * x [.., in], A [r, in] (r ≥ 1), E [r, 1], B [out, r], ranknum [1] → [.., out]. Native backend only.
 *
 * @example
 * const y = svdDelta(dropout(x), loraA, loraE, loraB, ranknum, alpha);
 */
export function svdDelta(x: Tensor, a: Tensor, e: Tensor, b: Tensor, ranknum: Tensor, scale: number): Tensor {
  const inFeatures = x.shape[x.shape.length - 1]!;
  const xShape = x.shape;
  const outShape = [...xShape.slice(0, -1), b.shape[0]!];
  const f = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, ai, ei, bi] = args as Tensor[];
    const [left, scaledB] = runFused(ADALORA_KERNELS.svdPrep, { a: ai!, e: ei!, b: bi!, ranknum }, { scale });
    const x2 = xi!.reshape([-1, inFeatures]); // [N, in]
    const h = tf.matMul(x2, left!, false, true); // [N, r]
    const y = tf.matMul(h, scaledB!, false, true); // [N, out]
    save([x2, h, left!, scaledB!, ai!, ei!]);
    return {
      value: y.reshape(outShape),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sx, sh, sl, ss, sa, se] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
        const dy2 = dy.reshape([-1, ss.shape[0]!]); // [N, out]
        // BatchMatMul's gradient for (transposeA = false, transposeB = true), twice.
        const dh = tf.matMul(dy2, ss, false, false); // [N, r]
        const dScaledB = tf.matMul(dy2, sh, true, false); // [out, r]
        const dx = tf.matMul(dh, sl, false, false).reshape(xShape); // [.., in]
        const dLeft = tf.matMul(dh, sx, true, false); // [r, in]
        const [dA, dE, dB] = runFused(
          ADALORA_KERNELS.svdPrepGrad,
          { dLeft, dScaledB, a: sa, e: se, ranknum },
          { scale },
        );
        return [dx, dA!, dE!, dB!];
      },
    };
  });
  // ranknum is a constant buffer (never trained): read in place, not an input of the tape node.
  return f(x, a, e, b) as Tensor;
}
