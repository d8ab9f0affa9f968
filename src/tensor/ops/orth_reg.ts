/**
 * AdaLoRA's orthogonal penalty over a list of matrices (paper arXiv 2303.10512 Eq. 4 as PEFT computes
 * it: the Frobenius norm itself, not squared): `(1/n)·Σ ‖P Pᵀ − I‖_F` for an A-kind matrix [r, in]
 * and `‖Pᵀ P − I‖_F` for a B-kind matrix [out, r]. On `native` one kernel computes every term and
 * its gradient `2·C·P/(n·‖C‖)` (A) / `2·P·C/(n·‖C‖)` (B), C the symmetric r×r residual, and the
 * backward is one kernel scaling them all; elsewhere composed tfjs ops (~12 kernels per matrix).
 */
import { tf, type Tensor } from '../tf.js';
import { ADALORA_KERNELS } from '../native/adalora_kernels.js';
import { nativeFused, runFused } from './fused.js';

/** Which Gram matrix a term uses: 'A' → P Pᵀ (rows are the rank), 'B' → Pᵀ P (columns are). */
export type OrthKind = 'A' | 'B';

/**
 * `sqrt(Σ x²)` whose gradient is 0 (not NaN) where the norm is 0, as `torch.norm`'s backward masks it.
 */
const safeFrobenius = tf.customGrad((x, save) => {
  const norm = tf.sqrt(tf.sum(tf.square(x as Tensor)));
  (save as tf.GradSaveFunc)([x as Tensor, norm]);
  return {
    value: norm,
    gradFunc: (dy, saved) => {
      const [xs, n] = saved as [Tensor, Tensor];
      const scale = tf.where(tf.greater(n, 0), tf.div(dy, n), tf.zerosLike(n));
      return [tf.mul(xs, scale)];
    },
  };
}) as (x: Tensor) => Tensor;

/** The composed-ops penalty (every backend; the reference the native kernel is tested against). */
export function orthPenaltyComposed(mats: Tensor[], kinds: OrthKind[]): Tensor {
  return tf.tidy(() => {
    if (mats.length === 0) return tf.scalar(0);
    const terms = mats.map((p, i) => {
      const c = kinds[i] === 'A' ? tf.matMul(p, p, false, true) : tf.matMul(p, p, true, false); // [r, r]
      return safeFrobenius(tf.sub(c, tf.eye(c.shape[0]!)));
    });
    return tf.div(tf.addN(terms), terms.length);
  });
}

/** Inputs named x0 … x{n−1} (the native kernels' convention). */
function numbered(ts: Tensor[]): Record<string, Tensor> {
  return Object.fromEntries(ts.map((t, i) => [`x${i}`, t]));
}

/**
 * The penalty as a scalar, differentiable with respect to every matrix (add it to a loss inside
 * `tf.variableGrads`). `kinds[i]` says how `mats[i]` is regularised; an empty list gives 0.
 *
 * @example
 * const r = orthPenalty([loraA, loraB], ['A', 'B']); // (‖A Aᵀ − I‖ + ‖Bᵀ B − I‖) / 2
 */
export function orthPenalty(mats: Tensor[], kinds: OrthKind[]): Tensor {
  if (mats.length !== kinds.length)
    throw new Error(`internal: orthPenalty got ${mats.length} matrices and ${kinds.length} kinds`);
  if (mats.length === 0 || !nativeFused(...mats) || mats.some((m) => m.rank !== 2))
    return orthPenaltyComposed(mats, kinds);
  const n = mats.length;
  const f = tf.customGrad(((...args: unknown[]) => {
    const xs = args.slice(0, n) as Tensor[];
    const save = args[n] as tf.GradSaveFunc;
    const [value, ...grads] = runFused(ADALORA_KERNELS.orthReg, numbered(xs), { kinds: kinds.join('') });
    save(grads);
    return {
      value: value!,
      gradFunc: (dy: Tensor, saved: Tensor[]) =>
        runFused(ADALORA_KERNELS.scaleAll, { s: dy, ...numbered(saved) }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(...mats) as Tensor;
}
