import { tf, type Tensor } from '../tf.js';

/**
 * Layer norm over the last axis (PyTorch `F.layer_norm`, biased variance).
 * @example layerNorm(x, gamma, beta, 1e-12) // BERT's eps
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, eps: number): Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const { mean, variance } = tf.moments(x, axis, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    const scaled = tf.mul(normed, gamma);
    return beta ? tf.add(scaled, beta) : scaled;
  });
}

/**
 * RMS norm over the last axis as Llama: `x · rsqrt(mean(x²) + eps) · w` (HF LlamaRMSNorm).
 * @example rmsNorm(x, w, 1e-5)
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), x.rank - 1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
  });
}
