import { tf, type Tensor } from '../tf.js';
import { ATTENTION_KERNELS } from '../native/attention_kernels.js';
import { FUSED, customGrad1, nativeFused, runFused } from './fused.js';

/** Large negative used for masked attention scores (finite, so fully masked rows stay NaN-free). */
export const MASK_VALUE = -1e9;

export interface AttentionOptions {
  /** Additive mask broadcastable to [B, H, Tq, Tk]: 0 where attending, MASK_VALUE where not. */
  mask?: Tensor | null;
  /** Apply a causal mask (query i sees keys ≤ i + (Tk − Tq), for KV-cached decoding). */
  causal?: boolean;
  /** Score scale; defaults to 1/√headDim. */
  scale?: number;
}

/**
 * Scaled dot-product attention: `softmax(q·kᵀ·scale + mask)·v`.
 * q [B, H, Tq, D], k/v [B, H, Tk, D] → [B, H, Tq, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (nativeFused(q, k, v) && q.rank === 4 && (!opts.mask || maskFits(opts.mask, q, k)))
    return tf.tidy(() => fusedAttention(q, k, v, opts));
  return tf.tidy(() => {
    const [, , tq, d] = q.shape as number[];
    const tk = k.shape[2]!;
    const scale = opts.scale ?? 1 / Math.sqrt(d!);
    let scores = tf.mul(tf.matMul(q, k, false, true), scale); // [B, H, Tq, Tk]
    if (opts.causal) scores = tf.add(scores, causalMask(tq!, tk));
    if (opts.mask) scores = tf.add(scores, opts.mask);
    const probs = tf.softmax(scores, -1);
    return tf.matMul(probs, v); // [B, H, Tq, D]
  });
}

/** The fused kernel reads a float32 mask of rank ≤ 4 that broadcasts to [B, H, Tq, Tk]. */
function maskFits(mask: Tensor, q: Tensor, k: Tensor): boolean {
  if (mask.dtype !== 'float32' || mask.rank > 4) return false;
  const scores = [q.shape[0]!, q.shape[1]!, q.shape[2]!, k.shape[2]!];
  const lead = 4 - mask.rank;
  return mask.shape.every((d, i) => d === 1 || d === scores[lead + i]);
}

/**
 * Native path: the two products stay BatchMatMul kernels; scale, mask and softmax are one kernel,
 * and their backward `scale·p⊙(dp − Σdp⊙p)` another. The mask is a constant (no gradient).
 */
function fusedAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const [, , tq, d] = q.shape as number[];
  const tk = k.shape[2]!;
  const scale = opts.scale ?? 1 / Math.sqrt(d!);
  let mask = opts.mask ?? null;
  if (opts.causal) mask = mask ? tf.add(mask, causalMask(tq!, tk)) : causalMask(tq!, tk);
  const softmax = customGrad1((scores, save) => {
    const inputs: Record<string, Tensor> = mask ? { scores, mask } : { scores };
    const probs = runFused(FUSED.maskedSoftmax, inputs, { scale })[0]!;
    save([probs]);
    return {
      value: probs,
      gradFunc: (dy, [p]) => runFused(FUSED.softmaxGrad, { y: p!, dy }, { scale })[0]!,
    };
  });
  const probs = softmax(tf.matMul(q, k, false, true)); // [B, H, Tq, Tk]
  return tf.matMul(probs, v); // [B, H, Tq, D]
}

/**
 * Multi-head attention on the projections' own layout: q [B, Tq, heads·d], k/v [B, Tk, heads·d] →
 * [B, Tq, heads·d], i.e. `mergeHeads(attention(splitHeads(q), splitHeads(k), splitHeads(v)))`. On
 * `native` the forward is one kernel (per head: q·kᵀ, scale, mask, softmax, ·v on strided views, no
 * head transposes) and so is the backward (dq, dk, dv from the saved probabilities); the composed
 * split/attention/merge runs on every other backend and is the reference it is tested against.
 * The mask (same rules as {@link attention}) is a constant. No dropout on the probabilities.
 *
 * @example
 * const ctx = multiHeadAttention(q, k, v, 6, { mask: paddingMask(attentionMask) }); // [B, T, 384]
 */
export function multiHeadAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  opts: AttentionOptions = {},
): Tensor {
  const [b, tq, width] = q.shape as number[];
  const d = width! / heads;
  const tk = k.shape[1]!;
  const scores = [b!, heads, tq!, tk];
  const mask = opts.mask ?? null;
  const fits =
    !mask ||
    (mask.dtype === 'float32' &&
      mask.rank <= 4 &&
      mask.shape.every((n, i) => n === 1 || n === scores[4 - mask.rank + i]));
  if (!(nativeFused(q, k, v) && q.rank === 3 && Number.isInteger(d) && fits))
    return tf.tidy(() => {
      const split = (t: Tensor) => t.reshape([t.shape[0]!, t.shape[1]!, heads, d]).transpose([0, 2, 1, 3]);
      const out = attention(split(q), split(k), split(v), opts); // [B, heads, Tq, d]
      return out.transpose([0, 2, 1, 3]).reshape([b!, tq!, width!]);
    });
  return tf.tidy(() => {
    const scale = opts.scale ?? 1 / Math.sqrt(d);
    let m = mask;
    if (opts.causal) m = m ? tf.add(m, causalMask(tq!, tk)) : causalMask(tq!, tk);
    const attrs = { heads, scale };
    const f = tf.customGrad(((qi: Tensor, ki: Tensor, vi: Tensor, save: tf.GradSaveFunc) => {
      const inputs: Record<string, Tensor> = { q: qi, k: ki, v: vi };
      if (m) inputs.mask = m;
      const [out, probs] = runFused(ATTENTION_KERNELS.forward, inputs, attrs);
      save([qi, ki, vi, probs!]);
      return {
        value: out!,
        gradFunc: (dy: Tensor, saved: Tensor[]) => {
          const [sq, sk, sv, sp] = saved as [Tensor, Tensor, Tensor, Tensor];
          return runFused(ATTENTION_KERNELS.backward, { dy, q: sq, k: sk, v: sv, probs: sp }, attrs);
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(q, k, v) as Tensor;
  });
}

/** [1, 1, Tq, Tk] additive causal mask aligned to the end (query i ↔ absolute position Tk − Tq + i). */
export function causalMask(tq: number, tk: number): Tensor {
  const data = new Float32Array(tq * tk);
  const offset = tk - tq;
  for (let i = 0; i < tq; i++) for (let j = 0; j < tk; j++) if (j > i + offset) data[i * tk + j] = MASK_VALUE;
  return tf.tensor4d(data, [1, 1, tq, tk]);
}

/** [B, 1, 1, T] additive mask from a [B, T] 0/1 attention mask (1 = real token). */
export function paddingMask(attentionMask: Tensor): Tensor {
  return tf.tidy(() => {
    const [b, t] = attentionMask.shape as [number, number];
    return tf.mul(tf.sub(1, attentionMask.toFloat()), MASK_VALUE).reshape([b, 1, 1, t]);
  });
}
