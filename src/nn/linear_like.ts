/**
 * `LinearLike`: what a LoRA-family adapter needs from the layer it wraps. `Linear` implements it; so
 * does the 4-bit layer (`nn/linear4bit.ts`, QLoRA), which dequantises in `denseWeight()` and
 * re-quantises in `setDenseWeight()` — so merge code is the same for every base layer (PEFT lora/bnb.py
 * `Linear4bit.merge`: dequantise → W + Δ → re-quantise).
 *
 * @example
 * if (isLinearLike(module)) {
 *   const w = module.denseWeight();          // caller owns w
 *   module.setDenseWeight(tf.add(w, delta)); // copied in; caller still owns the argument
 *   w.dispose();
 * }
 */
import type { Tensor, Variable } from '../tensor/tf.js';
import type { Module } from './module.js';

export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Weight stored [in, out] (GPT-2's Conv1D); LoRA's delta is transposed to match (PEFT lora/layer.py `get_delta_weight`). */
  readonly fanInFanOut: boolean;
  /** Optional bias [out] (trained by `bias: 'all' | 'lora_only'`, merged into by `loraBias`). */
  readonly bias?: Variable | undefined;
  forward(x: Tensor): Tensor;
  /** The weight as float32 in storage layout ([out, in], or [in, out] when fanInFanOut). Caller disposes. */
  denseWeight(): Tensor;
  /** Overwrites the weight with `w` (storage layout). The caller keeps ownership of `w`. */
  setDenseWeight(w: Tensor): void;
}

/** Structural check for {@link LinearLike}. */
export function isLinearLike(m: unknown): m is LinearLike {
  const o = m as Partial<LinearLike> | null;
  return (
    o !== null &&
    typeof o === 'object' &&
    typeof o.inFeatures === 'number' &&
    typeof o.outFeatures === 'number' &&
    typeof o.fanInFanOut === 'boolean' &&
    typeof o.denseWeight === 'function' &&
    typeof o.setDenseWeight === 'function' &&
    typeof o.forward === 'function'
  );
}
