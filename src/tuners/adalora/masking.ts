/**
 * Masking helpers of the rank allocator (PEFT adalora/layer.py `RankAllocator.mask_to_budget`): PyTorch's
 * `kthvalue` threshold and the in-place zeroing of pruned `lora_E` entries.
 */
import { tf } from '../../tensor/tf.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { ParamMap } from './rank_allocator.js';

/**
 * The k-th smallest (1-based) value of `scores`, NaN sorting last (PyTorch `kthvalue`), or -Infinity
 * for k = 0 (nothing pruned). Throws when k is out of range (PEFT #2337 crashed with a bare RuntimeError).
 *
 * @example
 * kthSmallest(Float32Array.from([0.5, 0.1, 0.3, 0.2, 0.4, 0.05]), 2); // 0.1 (f32)
 */
export function kthSmallest(scores: Float32Array, k: number): number {
  if (k === 0) return -Infinity;
  if (!Number.isInteger(k) || k < 0 || k > scores.length) {
    throw new ConfigError(
      'RankAllocator.maskToBudget',
      `k = initial budget - budget must be in [0, ${scores.length}] (the number of triplets)`,
      k,
      'the budget must lie between 0 and the current total rank; check targetR < initR and that the allocator was built for the current ranks',
    );
  }
  const sorted = Float32Array.from(scores).sort(); // TypedArray sort: numeric, NaN last
  return sorted[k - 1]!;
}

/** Replaces every occurrence, as Python's `str.replace` does. */
export function replaceAll(s: string, from: string, to: string): string {
  return s.split(from).join(to);
}

/** `E.masked_fill_(~kept, 0)` on the variable `params.get(n)`. */
export function assignMask(params: ParamMap, n: string, kept: boolean[]): void {
  const p = params.get(n);
  if (!(p instanceof tf.Variable)) {
    throw new ConfigError(
      'RankAllocator',
      'lora_E must be a tf.Variable to be masked in place',
      n,
      'pass the model parameters',
    );
  }
  if (p.shape[0] !== kept.length) {
    throw new ShapeError(
      'RankAllocator',
      `rank pattern length differs from the rank of ${n}`,
      kept.length,
      `expected ${p.shape[0]}`,
    );
  }
  tf.tidy(() => {
    const mask = tf.tensor(
      Uint8Array.from(kept, (k) => (k ? 1 : 0)),
      [kept.length, 1],
      'bool',
    );
    p.assign(tf.where(mask, p, tf.zerosLike(p)));
  });
}
