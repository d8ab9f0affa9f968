/**
 * Rotary position embeddings in Hugging Face's `rotate_half` convention (dimension i pairs with
 * i + d/2), as `LlamaRotaryEmbedding` + `apply_rotary_pos_emb`.
 */
import { tf, type Tensor } from '../tensor/tf.js';

/**
 * cos and sin tables [1, 1, T, d] for absolute positions `start … start + T − 1`:
 * angle(p, i) = p · θ^(−2i/d) for i < d/2, repeated for the second half. Angles are computed in
 * float64 and rounded once, so long positions stay accurate. Allocates two tensors.
 *
 * @example const { cos, sin } = ropeTables(0, 8, 64, 10000); // each [1, 1, 8, 64]
 */
export function ropeTables(
  start: number,
  t: number,
  headDim: number,
  theta: number,
): { cos: Tensor; sin: Tensor } {
  const half = headDim / 2;
  const cos = new Float32Array(t * headDim);
  const sin = new Float32Array(t * headDim);
  for (let i = 0; i < half; i++) {
    const invFreq = 1 / Math.pow(theta, (2 * i) / headDim);
    for (let p = 0; p < t; p++) {
      const angle = (start + p) * invFreq;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * headDim + i] = c;
      cos[p * headDim + half + i] = c;
      sin[p * headDim + i] = s;
      sin[p * headDim + half + i] = s;
    }
  }
  return { cos: tf.tensor4d(cos, [1, 1, t, headDim]), sin: tf.tensor4d(sin, [1, 1, t, headDim]) };
}

/**
 * `x·cos + rotate_half(x)·sin` with `rotate_half(x) = [−x₂, x₁]`: x [B, H, T, d] → [B, H, T, d].
 * @example applyRope(q, cos, sin)
 */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tf.tidy(() => {
    const d = x.shape[3]!;
    const [x1, x2] = tf.split(x, [d / 2, d / 2], 3); // 2 × [B, H, T, d/2]
    const rotated = tf.concat([tf.neg(x2!), x1!], 3); // [B, H, T, d]
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)); // [B, H, T, d]
  });
}

/**
 * Per-row cos and sin tables [B, 1, T, d] for rows starting at absolute positions `starts[b]`, each row
 * computed exactly as {@link ropeTables} computes it (ragged KV caches, models/ragged_cache.ts).
 * Allocates two tensors.
 *
 * @example const { cos, sin } = ropeTablesRows([5, 9], 1, 64, 10000); // each [2, 1, 1, 64]
 */
export function ropeTablesRows(
  starts: number[],
  t: number,
  headDim: number,
  theta: number,
): { cos: Tensor; sin: Tensor } {
  return tf.tidy(() => {
    const rows = starts.map((s) => ropeTables(s, t, headDim, theta));
    const cos = tf.concat(
      rows.map((r) => r.cos),
      0,
    ); // [B, 1, T, d]
    const sin = tf.concat(
      rows.map((r) => r.sin),
      0,
    ); // [B, 1, T, d]
    return { cos, sin };
  });
}
