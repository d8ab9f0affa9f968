/**
 * Pieces every architecture shares: head reshapes, masks, KV-cache bookkeeping, pooling and losses.
 * All functions are pure tensor code; the ones that allocate say so, and are meant to run inside the
 * caller's `tf.tidy`.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { paddingMask, softmaxCrossEntropy, mseLoss } from '../tensor/ops/index.js';
import { ConfigError, ShapeError } from '../errors.js';
import type { KVCache, ModelInputs, ModelOutput } from './base.js';
import type { ProblemType } from './config.js';

/**
 * Runs a forward body in `tf.tidy`, keeping exactly the tensors of the returned output (logits, loss,
 * the new KV cache). The caller owns them.
 * @example return tidyOutput(() => ({ logits: this.head.forward(h) }));
 */
export function tidyOutput(fn: () => ModelOutput): ModelOutput {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as ModelOutput;
}

/** `[B, T, n·d] → [B, n, T, d]`. */
export function splitHeads(x: Tensor, nHead: number, headDim: number): Tensor {
  const [b, t] = x.shape as number[];
  return x.reshape([b!, t!, nHead, headDim]).transpose([0, 2, 1, 3]); // [B, nHead, T, headDim]
}

/** `[B, n, T, d] → [B, T, n·d]`. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, n, t, d] = x.shape as number[];
  return x.transpose([0, 2, 1, 3]).reshape([b!, t!, n! * d!]); // [B, T, n·d]
}

/**
 * Grouped-query attention: each of `nKv` key/value heads serves `nRep` consecutive query heads
 * (HF `repeat_kv`): `[B, nKv, T, d] → [B, nKv·nRep, T, d]`.
 */
export function repeatKv(x: Tensor, nRep: number): Tensor {
  if (nRep === 1) return x;
  const [b, nKv, t, d] = x.shape as number[];
  // rank-4 tile: tfjs has no Tile gradient above rank 4
  return tf
    .tile(x.reshape([b! * nKv!, 1, t!, d!]), [1, nRep, 1, 1]) // [B·nKv, nRep, T, d]
    .reshape([b!, nKv! * nRep, t!, d!]); // [B, nKv·nRep, T, d]
}

/** Checks `inputIds` is [B, T] with T ≥ 1 and returns [B, T]. */
export function batchShape(inputs: ModelInputs, where: string): [number, number] {
  const ids = inputs.inputIds;
  if (ids.rank !== 2 || ids.shape[1] === 0) {
    throw new ShapeError(
      `${where}.inputIds`,
      'must be [batch, seq] with seq ≥ 1',
      ids.shape,
      'pass int32 ids of shape [B, T]',
    );
  }
  return [ids.shape[0]!, ids.shape[1]!];
}

/** Length already held in a KV cache (0 without one). */
export function pastLength(past: KVCache | undefined): number {
  return past && past.keys.length > 0 ? past.keys[0]!.shape[2]! : 0;
}

/** Checks a cache has one entry per layer and the batch of the new tokens. */
export function checkCache(past: KVCache | undefined, nLayers: number, batch: number, where: string): void {
  if (!past || past.keys.length === 0) return;
  if (past.keys.length !== nLayers || past.values.length !== nLayers) {
    throw new ShapeError(
      `${where}.pastKeyValues`,
      `must hold ${nLayers} layers`,
      [past.keys.length, past.values.length],
      'pass the cache returned by the previous call',
    );
  }
  if (past.keys[0]!.shape[0] !== batch) {
    throw new ShapeError(
      `${where}.pastKeyValues`,
      'batch differs from inputIds',
      past.keys[0]!.shape,
      'decode the same batch the cache was built for',
    );
  }
}

/**
 * The additive padding mask [B, 1, 1, past + T] from `attentionMask` ([B, past + T], HF's convention
 * with a cache), or null when no mask was given. Allocates.
 */
export function additivePaddingMask(inputs: ModelInputs, past: number, where: string): Tensor | null {
  const m = inputs.attentionMask;
  if (!m) return null;
  const [b, t] = inputs.inputIds.shape as [number, number];
  if (m.rank !== 2 || m.shape[0] !== b || m.shape[1] !== past + t) {
    throw new ShapeError(
      `${where}.attentionMask`,
      `must be [${b}, ${past + t}] (batch, cached + new tokens)`,
      m.shape,
      'pass a 0/1 mask covering the cached and the new tokens',
    );
  }
  return paddingMask(m); // [B, 1, 1, past + T]
}

/**
 * Validates `positionOffsets` (one non-negative integer per row) and says whether it is set.
 * @example const rope = rowStarts(inputs, b, where) ? ropeTablesRows(…) : ropeTables(…);
 */
export function rowStarts(inputs: ModelInputs, batch: number, where: string): boolean {
  const o = inputs.positionOffsets;
  if (o === undefined) return false;
  if (o.length !== batch || o.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new ShapeError(
      `${where}.positionOffsets`,
      `must hold one non-negative integer position per row (${batch} rows)`,
      o,
      "pass each row's count of real cached tokens",
    );
  }
  return true;
}

/** Concatenates a layer's cached keys or values with the new ones along time. */
export function appendCache(past: Tensor | undefined, current: Tensor): Tensor {
  return past ? tf.concat([past, current], 2) : current; // [B, nKv, past + T, d]
}

/**
 * Index of the last token that is not `padTokenId` in each row (HF's decoder sequence-classification
 * pooling; works for right and left padding). Without a pad id only batch size 1 is defined, as in HF.
 * Allocates an int32 [B].
 */
export function lastNonPadIndices(inputIds: Tensor, padTokenId: number | undefined, where: string): Tensor {
  const [b, t] = inputIds.shape as [number, number];
  if (padTokenId === undefined) {
    if (b !== 1) {
      throw new ConfigError(
        `${where}.pad_token_id`,
        'is needed to find the last token of each row when the batch has more than one row',
        b,
        'set model.config.pad_token_id (e.g. to the EOS id), or classify one sequence at a time',
      );
    }
    return tf.fill([1], t - 1, 'int32');
  }
  const nonPad = tf.notEqual(inputIds, padTokenId).toInt(); // [B, T]
  const positions = tf.range(0, t, 1, 'int32').reshape([1, t]); // [1, T]
  return tf.argMax(tf.mul(nonPad, positions), 1).toInt(); // [B]
}

/** Rows `hidden[b, index[b]]`: [B, T, H] × int32 [B] → [B, H]. */
export function gatherPositions(hidden: Tensor, index: Tensor): Tensor {
  const [b, t, h] = hidden.shape as number[];
  const flat = tf.add(tf.range(0, b! * t!, t!, 'int32'), index.toInt()); // [B] row starts + offsets
  return tf.gather(hidden.reshape([b! * t!, h!]), flat); // [B, H]
}

/**
 * Throws unless causal-LM `labels` are [B, T] like the inputIds (every causal-LM loss checks this).
 * @example assertCausalLabels(labels, 2, 16, 'LlamaForCausalLM'); // labels [2, 16] → ok
 */
export function assertCausalLabels(labels: Tensor, b: number, t: number, where: string): void {
  if (labels.rank !== 2 || labels.shape[0] !== b || labels.shape[1] !== t) {
    throw new ShapeError(
      `${where}.labels`,
      `must be [${b}, ${t}] like inputIds`,
      labels.shape,
      'pass token ids (-100 to ignore)',
    );
  }
}

/**
 * Causal-LM loss with HF's shift inside: logits at position i predict labels at i + 1; -100 is ignored.
 * logits [B, T, V], labels int32 [B, T] → scalar.
 */
export function causalLmLoss(logits: Tensor, labels: Tensor, where: string): Tensor {
  const [b, t, v] = logits.shape as number[];
  assertCausalLabels(labels, b!, t!, where);
  if (t! < 2) return tf.scalar(0); // nothing to predict: like an all-ignored batch
  const shiftedLogits = logits.slice([0, 0, 0], [b!, t! - 1, v!]); // [B, T-1, V]
  const shiftedLabels = labels.slice([0, 1], [b!, t! - 1]); // [B, T-1]
  return softmaxCrossEntropy(shiftedLogits, shiftedLabels);
}

/** Sequence-classification loss: MSE for regression, cross-entropy for single-label classes. */
export function classificationLoss(
  logits: Tensor,
  labels: Tensor,
  problem: ProblemType,
  where: string,
): Tensor {
  const [b] = logits.shape as number[];
  if (labels.size !== b) {
    throw new ShapeError(
      `${where}.labels`,
      `must hold one label per row (${b})`,
      labels.shape,
      'pass labels of shape [B]',
    );
  }
  if (problem === 'regression') return mseLoss(logits, labels);
  if (labels.dtype !== 'int32') {
    throw new ShapeError(
      `${where}.labels`,
      'must be int32 class ids for classification',
      labels.dtype,
      'build labels with tf.tensor1d(ids, "int32")',
    );
  }
  return softmaxCrossEntropy(logits, labels);
}
