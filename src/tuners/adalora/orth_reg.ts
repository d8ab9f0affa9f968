/**
 * AdaLoRA's orthogonal regulariser (paper arXiv 2303.10512 Eq. 4, as PEFT and the original code compute
 * it; PEFT adalora/model.py `forward`): for every `lora_A` / `lora_B` of the adapter,
 * `‖A Aᵀ − I‖_F` and `‖Bᵀ B − I‖_F` — the Frobenius norm itself, **not** squared as in the paper — and
 * the mean over all N of them (N = 2 × adapted layers). Pruned rows/columns are still regularised
 * (the matrices keep their full r0 size during training).
 */
import { tf, type Tensor } from '../../tensor/tf.js';

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

/**
 * R = (1/N)·[Σ ‖A Aᵀ − I‖_F + Σ ‖Bᵀ B − I‖_F] over parameters whose name contains `lora_A` or `lora_B`
 * and the adapter name (PEFT's substring tests). Returns a scalar (0 when nothing matches);
 * differentiable, so it can be added to a loss inside `tf.variableGrads`.
 *
 * @example
 * const loss = tf.add(outputs.loss, tf.mul(orthRegularizer(model.namedParameters(), 'default'), 0.5));
 */
export function orthRegularizer(params: Iterable<[string, Tensor]>, adapterName = 'default'): Tensor {
  return tf.tidy(() => {
    const terms: Tensor[] = [];
    for (const [n, p] of params) {
      const isA = n.includes('lora_A');
      if (!(isA || n.includes('lora_B')) || !n.includes(adapterName)) continue;
      const c = isA ? tf.matMul(p, p, false, true) : tf.matMul(p, p, true, false); // both [r, r]
      const r = c.shape[0]!;
      terms.push(safeFrobenius(tf.sub(c, tf.eye(r))));
    }
    if (terms.length === 0) return tf.scalar(0);
    return tf.div(tf.addN(terms), terms.length);
  });
}
