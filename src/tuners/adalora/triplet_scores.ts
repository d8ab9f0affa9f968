/**
 * AdaLoRA's triplet importance scores (paper arXiv 2303.10512 Eq. 11; PEFT `RankAllocator._element_score` / `mask_to_budget`), from the rank
 * allocator's statistics: S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij), with the element score
 * s = Ī·Ū ('sensitivity-uncertainty'), Ī ('sensitivity') or |λ| alone ('magnitude').
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { ADALORA_KERNELS } from '../../tensor/native/adalora_kernels.js';
import { nativeFused, runFused } from '../../tensor/ops/fused.js';
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
  if (importance !== 'magnitude') {
    const fused = nativeTripletScores(params, [a, b, e], importance, avgIpt, avgUnc);
    if (fused) return fused;
  }
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

/**
 * The scores of {@link tripletScores} for 'sensitivity' / 'sensitivity-uncertainty' on `native` in
 * one `LowrankTripletScores` call over every layer (instead of ~10 small kernels per layer), with
 * the same float32 roundings (bit-identical: triplet_scores.test.ts); null when the composed path
 * must run (another backend, missing statistics or an unmatched A/B: that path raises the error).
 */
function nativeTripletScores(
  params: ParamMap,
  [a, b, e]: [string, string, string],
  importance: ImportanceMetric,
  avgIpt: ReadonlyMap<string, Tensor>,
  avgUnc: ReadonlyMap<string, Tensor>,
): Map<string, Tensor> | null {
  // groups in the composed path's key order (first A or B seen), parts in params order
  const groups = new Map<string, { e?: string; parts: [string, 'A' | 'B'][] }>();
  for (const [n] of params) {
    for (const [tag, kind] of [
      [a, 'A'],
      [b, 'B'],
    ] as const) {
      if (!n.includes(tag)) continue;
      const key = replaceAll(n, `lora_${kind}`, '%s');
      const g = groups.get(key) ?? { parts: [] };
      g.parts.push([n, kind]);
      groups.set(key, g);
    }
    if (n.includes(e)) {
      const key = replaceAll(n, 'lora_E', '%s');
      const g = groups.get(key);
      if (g) g.e = n;
    }
  }
  const withUnc = importance === 'sensitivity-uncertainty';
  const names: string[] = [];
  let kinds = '';
  const groupStart: number[] = [];
  for (const g of groups.values()) {
    if (!g.e) return null;
    groupStart.push(names.length);
    names.push(g.e);
    kinds += 'E';
    for (const [n, kind] of g.parts) {
      names.push(n);
      kinds += kind;
    }
  }
  const ipt = names.map((n) => avgIpt.get(n));
  const unc = names.map((n) => avgUnc.get(n));
  const all = [...ipt, ...(withUnc ? unc : [])];
  if (names.length === 0 || all.some((t) => !t || t.rank !== 2) || !nativeFused(...(all as Tensor[])))
    return null;
  const inputs: Record<string, Tensor> = {};
  ipt.forEach((t, i) => (inputs[`i${i}`] = t!));
  if (withUnc) unc.forEach((t, i) => (inputs[`u${i}`] = t!));
  const scores = runFused(ADALORA_KERNELS.tripletScores, inputs, { kinds, groupStart });
  return new Map([...groups.keys()].map((key, i) => [replaceAll(key, '%s', 'lora_E'), scores[i]!]));
}
