/**
 * AdaLoRA's orthogonal regulariser (paper arXiv 2303.10512 Eq. 4, as PEFT and the original code compute
 * it; PEFT adalora/model.py `forward`): for every `lora_A` / `lora_B` of the adapter,
 * `‖A Aᵀ − I‖_F` and `‖Bᵀ B − I‖_F` — the Frobenius norm itself, **not** squared as in the paper — and
 * the mean over all N of them (N = 2 × adapted layers). Pruned rows/columns are still regularised
 * (the matrices keep their full r0 size during training). The arithmetic is `orthPenalty`
 * (src/tensor/ops/orth_reg.ts): one native kernel for all matrices, composed ops elsewhere.
 */
import { type Tensor } from '../../tensor/tf.js';
import { orthPenalty, type OrthKind } from '../../tensor/ops/orth_reg.js';

/**
 * R = (1/N)·[Σ ‖A Aᵀ − I‖_F + Σ ‖Bᵀ B − I‖_F] over parameters whose name contains `lora_A` or `lora_B`
 * and the adapter name (PEFT's substring tests). Returns a scalar (0 when nothing matches);
 * differentiable, so it can be added to a loss inside `tf.variableGrads`.
 *
 * @example
 * const loss = tf.add(outputs.loss, tf.mul(orthRegularizer(model.namedParameters(), 'default'), 0.5));
 */
export function orthRegularizer(params: Iterable<[string, Tensor]>, adapterName = 'default'): Tensor {
  const mats: Tensor[] = [];
  const kinds: OrthKind[] = [];
  for (const [n, p] of params) {
    const isA = n.includes('lora_A');
    if (!(isA || n.includes('lora_B')) || !n.includes(adapterName)) continue;
    mats.push(p);
    kinds.push(isA ? 'A' : 'B');
  }
  return orthPenalty(mats, kinds);
}
