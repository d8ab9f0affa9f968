import { tf, type Tensor } from '../tf.js';
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
