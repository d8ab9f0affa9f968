import { tf, type Tensor } from '../tf.js';
import { FUSED, nativeFused, runFused } from './fused.js';

/** Hyper-parameters of one AdamW update; `step` is the 1-based step count (bias correction). */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/**
 * One torch.optim.AdamW update (single-tensor path) of parameter `p` with gradient `g` and moments
 * `m`, `v`: `p·(1 − lr·wd) − lr/(1 − β1ᵗ) · m' / (√v' / √(1 − β2ᵗ) + eps)` with
 * `m' = β1·m + (1 − β1)·g`, `v' = β2·v + (1 − β2)·g²`. Returns new tensors {p, m, v} (the caller
 * assigns them and owns them). On native one kernel pass instead of ~14 elementwise kernels.
 *
 * @example
 * const next = adamwUpdate(w, grad, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 });
 */
export function adamwUpdate(
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  h: AdamWHyper,
): { p: Tensor; m: Tensor; v: Tensor } {
  if (nativeFused(p, g, m, v)) {
    const [np, nm, nv] = runFused(FUSED.adamw, { p, g, m, v }, { ...h });
    return { p: np!, m: nm!, v: nv! };
  }
  return tf.tidy(() => {
    const m1 = tf.add(tf.mul(m, h.beta1), tf.mul(g, 1 - h.beta1));
    const v1 = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(1 - Math.pow(h.beta2, h.step))), h.eps);
    const stepSize = h.lr / (1 - Math.pow(h.beta1, h.step));
    const p1 = tf.sub(tf.mul(p, 1 - h.lr * h.weightDecay), tf.mul(tf.div(m1, denom), stepSize));
    return { p: p1, m: m1, v: v1 };
  });
}

/**
 * {@link adamwUpdate} for every parameter of an optimizer step: on native one kernel over all of them
 * (the same per-element arithmetic, so the same bits as one call per parameter), elsewhere one
 * composed update per parameter. Returns new tensors per parameter (the caller assigns and owns them).
 *
 * @example
 * const next = adamwUpdateAll([w1, w2], [g1, g2], [m1, m2], [v1, v2], hyper); // [{ p, m, v }, { p, m, v }]
 */
export function adamwUpdateAll(
  ps: Tensor[],
  gs: Tensor[],
  ms: Tensor[],
  vs: Tensor[],
  h: AdamWHyper,
): { p: Tensor; m: Tensor; v: Tensor }[] {
  if (ps.length === 0 || !nativeFused(...ps, ...gs, ...ms, ...vs))
    return ps.map((p, i) => adamwUpdate(p, gs[i]!, ms[i]!, vs[i]!, h));
  const inputs: Record<string, Tensor> = {};
  ps.forEach((p, i) =>
    Object.assign(inputs, { [`p${i}`]: p, [`g${i}`]: gs[i]!, [`m${i}`]: ms[i]!, [`v${i}`]: vs[i]! }),
  );
  const outs = runFused(FUSED.adamwAll, inputs, { ...h });
  return ps.map((_, i) => ({ p: outs[3 * i]!, m: outs[3 * i + 1]!, v: outs[3 * i + 2]! }));
}
