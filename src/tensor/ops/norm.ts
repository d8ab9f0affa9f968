import { tf, type Tensor } from '../tf.js';
import { FUSED, nativeFused, runFused } from './fused.js';

/** True when `w` is a 1-D weight over the last axis of `x` (what the fused kernels take). */
const lastAxisWeight = (x: Tensor, w: Tensor): boolean => w.rank === 1 && w.shape[0] === x.shape[x.rank - 1];

/**
 * One fused native kernel for layer / RMS norm with its gradient (dx, dγ, dβ) in one pass each way.
 * γ and β are 1-D over the last axis; `mean` and `rstd` per row are saved for the backward pass.
 */
function fusedNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, eps: number, rms: boolean): Tensor {
  const hasBeta = beta !== null;
  const f = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, g, b] = args as Tensor[];
    const inputs: Record<string, Tensor> = { x: xi!, gamma: g! };
    if (hasBeta) inputs.beta = b!;
    const [y, mean, rstd] = runFused(FUSED.norm, inputs, { eps, rms });
    save([xi!, g!, mean!, rstd!]);
    return {
      value: y!,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sx, sg, sm, sr] = saved;
        const attrs = { rms, hasBeta };
        return runFused(FUSED.normGrad, { dy, x: sx!, gamma: sg!, mean: sm!, rstd: sr! }, attrs);
      },
    };
  });
  return (hasBeta ? f(x, gamma, beta) : f(x, gamma)) as Tensor;
}

/**
 * Layer norm over the last axis (PyTorch `F.layer_norm`, biased variance). On the native backend
 * one fused kernel (and one for the gradient); elsewhere composed tfjs ops.
 * @example layerNorm(x, gamma, beta, 1e-12) // BERT's eps
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, eps: number): Tensor {
  if (
    nativeFused(x, gamma, ...(beta ? [beta] : [])) &&
    lastAxisWeight(x, gamma) &&
    (!beta || lastAxisWeight(x, beta))
  )
    return tf.tidy(() => fusedNorm(x, gamma, beta, eps, false));
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
 * Fused on the native backend like {@link layerNorm}.
 * @example rmsNorm(x, w, 1e-5)
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  if (nativeFused(x, weight) && lastAxisWeight(x, weight))
    return tf.tidy(() => fusedNorm(x, weight, null, eps, true));
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), x.rank - 1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
  });
}
