/**
 * Chunked vocabulary loss for causal-LM heads (issue 17 item 3): when a model has it on and a
 * forward with labels records gradients, the head's logits are never built for the whole batch; the
 * loss goes through `chunkedLinearCrossEntropy` (tensor/ops/chunked_ce.ts) a block of rows at a time.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { chunkedLinearCrossEntropy } from '../tensor/ops/chunked_ce.js';
import { Linear } from '../nn/layers.js';
import { HalfLinear } from '../nn/half_embedding.js';
import type { Module } from '../nn/module.js';
import { ConfigError } from '../errors.js';
import type { ModelInputs, ModelOutput } from './base.js';
import { assertCausalLabels } from './common.js';

const chunkRowsOf = new WeakMap<Module, number | null>();

/**
 * Turns the chunked vocabulary loss on (`true` or a row count per block) or off (`false`) for every
 * module of `model`. While on, a causal-LM forward with labels under gradient recording returns the
 * same loss (within summation order) and gradients, but its `logits` are an empty [B, T, 0] tensor
 * (as Liger's fused linear cross-entropy returns none); forwards without gradients (evaluation,
 * generation) are unchanged. Applies when the head is a plain `Linear` (or a float16 tied head,
 * nn/half_embedding.ts) without soft-capping; a head
 * wrapped by an adapter or `modules_to_save`, or Gemma 2's capped logits, keep the full path.
 *
 * @example
 * setChunkedLoss(peftModel, true); // default block: 8 Mi logits (170 rows of a 49,152 vocabulary)
 * setChunkedLoss(peftModel, 64);   // 64 rows per block
 */
export function setChunkedLoss(model: Module, on: boolean | number = true): void {
  if (typeof on === 'number' && !(Number.isInteger(on) && on >= 1))
    throw new ConfigError(
      'setChunkedLoss(rows)',
      'must be a positive integer or a boolean',
      on,
      'pass e.g. 128',
    );
  for (const [, m] of model.namedModules()) {
    if (on === false) chunkRowsOf.delete(m);
    else chunkRowsOf.set(m, on === true ? null : on);
  }
}

/** Rows per block set by {@link setChunkedLoss} (null = default), or undefined when off. */
export function chunkedLossRows(model: Module): number | null | undefined {
  return chunkRowsOf.get(model);
}

/**
 * The causal-LM output with the chunked loss (HF's shift: hidden at i predicts labels at i + 1),
 * or null when the plain path applies (off, no labels, no gradient recording, a wrapped head,
 * soft-capped logits).
 *
 * @example
 * const chunked = chunkedCausalLmOutput(this, this.lm_head, hidden, inputs, this.softcap);
 */
export function chunkedCausalLmOutput(
  model: Module & { architecture: string },
  head: Module,
  hidden: Tensor,
  inputs: ModelInputs,
  softcap: number | null,
): ModelOutput | null {
  const where = model.architecture;
  const rows = chunkRowsOf.get(model);
  const labels = inputs.labels;
  const recording = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
  if (rows === undefined || !labels || !recording || softcap !== null) return null;
  const half = head instanceof HalfLinear ? head.table : null; // a float16 tied head: widened per block
  if (!half && (!(head instanceof Linear) || head.fanInFanOut || head.bias)) return null;
  const [b, t, h] = hidden.shape as [number, number, number];
  assertCausalLabels(labels, b, t, where);
  const logits = tf.zeros([b, t, 0]);
  if (t < 2) return { logits, loss: tf.scalar(0) }; // nothing to predict, as causalLmLoss
  const shifted = hidden.slice([0, 0, 0], [b, t - 1, h]).reshape([b * (t - 1), h]); // [B·(T-1), H]
  const next = labels.slice([0, 1], [b, t - 1]).reshape([-1]); // [B·(T-1)]
  const weight = half ?? (head as Linear).weight;
  const loss = chunkedLinearCrossEntropy(shifted, weight, next, { chunkRows: rows ?? undefined });
  return { logits, loss };
}
