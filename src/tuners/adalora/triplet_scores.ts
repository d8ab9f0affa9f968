/**
 * AdaLoRA's triplet importance scores (paper arXiv 2303.10512 Eq. 11; PEFT `RankAllocator._element_score` / `mask_to_budget`), from the rank
 * allocator's statistics: S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij), with the element score
 * s = Ī·Ū ('sensitivity-uncertainty'), Ī ('sensitivity') or |λ| alone ('magnitude').
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { ConfigError, CheckpointError } from '../../errors.js';
import { replaceAll } from './masking.js';
import type { ImportanceMetric, ParamMap } from './rank_allocator.js';

/** Element score s(n) (PEFT `RankAllocator._element_score`), in a tidy scope of the caller. */
function elementScore(
  n: string,
  p: Tensor,
  importance: ImportanceMetric,
  avgIpt: ReadonlyMap<string, Tensor>,
  avgUnc: ReadonlyMap<string, Tensor>,
): Tensor {
  if (importance === 'magnitude') return tf.abs(p);
  const avgI = avgIpt.get(n);
  if (!avgI) {
    throw new ConfigError(
      'RankAllocator.maskToBudget',
      'no importance statistics for this parameter yet',
      n,
      'call updateIpt (or updateAndAllocate before the final phase) at least once before masking',
    );
  }
  return importance === 'sensitivity' ? avgI : tf.mul(avgI, avgUnc.get(n)!);
}

/**
 * Triplet scores per `lora_E` parameter name, each f32 [r]; parameters are matched by PEFT's
 * substring tests (`lora_A.<adapter>` …). Caller disposes the returned tensors.
 *
 * @example const scores = tripletScores(params, 'default', 'sensitivity-uncertainty', alloc.expAvgIpt, alloc.expAvgUnc);
 */
export function tripletScores(
  params: ParamMap,
  adapterName: string,
  importance: ImportanceMetric,
  avgIpt: ReadonlyMap<string, Tensor>,
  avgUnc: ReadonlyMap<string, Tensor>,
): Map<string, Tensor> {
  const a = `lora_A.${adapterName}`;
  const b = `lora_B.${adapterName}`;
  const e = `lora_E.${adapterName}`;
  const score = (n: string, p: Tensor) => elementScore(n, p, importance, avgIpt, avgUnc);
  const magnitude = importance === 'magnitude';
  const vec = new Map<string, Tensor[]>();
  const val = new Map<string, Tensor>();
  const out = new Map<string, Tensor>();
  tf.tidy(() => {
    for (const [n, p] of params) {
      if (n.includes(a) && !magnitude) {
        const key = replaceAll(n, 'lora_A', '%s');
        vec.set(key, [...(vec.get(key) ?? []), tf.mean(score(n, p), 1).reshape([-1])]);
      }
      if (n.includes(b) && !magnitude) {
        const key = replaceAll(n, 'lora_B', '%s');
        vec.set(key, [...(vec.get(key) ?? []), tf.mean(score(n, p), 0).reshape([-1])]);
      }
      if (n.includes(e)) {
        const key = replaceAll(n, 'lora_E', '%s');
        val.set(key, score(n, p).reshape([-1]));
        if (magnitude) vec.set(key, []);
      }
    }
    for (const [key, parts] of vec) {
      const sE = val.get(key);
      if (!sE) {
        throw new CheckpointError(
          'RankAllocator.maskToBudget',
          'lora_A/lora_B without a matching lora_E',
          key.replace('%s', 'lora_E'),
          'every AdaLoRA layer needs lora_A, lora_B and lora_E',
        );
      }
      const s = parts.reduce((acc, t) => tf.add(acc, t), sE);
      out.set(replaceAll(key, '%s', 'lora_E'), tf.keep(s));
    }
  });
  return out;
}
