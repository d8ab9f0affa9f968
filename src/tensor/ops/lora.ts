import { tf, type Tensor } from '../tf.js';

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
 * through tfjs autograd. The results equal PEFT's up to float32 rounding order.
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
