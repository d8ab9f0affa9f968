/**
 * Cross-entropy over a vocabulary through the output projection, a block of rows at a time: the
 * loss of `softmaxCrossEntropy(hidden·Wᵀ, labels)` without ever holding the [N, V] logits, their
 * probabilities or their gradient for all N rows at once (the fused linear cross-entropy of Liger
 * Kernel, Hsu et al. 2024, §3.3). Under gradient recording the gradient is computed in the same pass
 * (the loss is linear in the incoming scalar gradient, so d hidden and d W at dy = 1 are kept and
 * scaled in backward): the same GEMMs as the unchunked op, and only [N, H] (plus [V, H] when W is
 * trainable) kept from forward to backward instead of [N, V] probabilities.
 */
import { tf, type Tensor } from '../tf.js';
import { FUSED, nativeFused, runFused } from './fused.js';
import { IGNORE_INDEX } from './loss.js';
import { HalfMatrix, matMulHalf, matMulHalfT } from '../half.js';

/** Logit elements per block by default: 8 Mi floats (32 MB), e.g. 170 rows of a 49,152 vocabulary. */
export const DEFAULT_CHUNK_ELEMENTS = 2 ** 23;

export interface ChunkedCrossEntropyOptions {
  /** Rows per block; default {@link DEFAULT_CHUNK_ELEMENTS} / V (at least 1). */
  chunkRows?: number;
  ignoreIndex?: number;
}

interface EngineTape {
  isTapeOn(): boolean;
}

/** Rows per block for a vocabulary of `v`. */
export function chunkRowsFor(v: number, chunkRows?: number): number {
  return Math.max(1, Math.floor(chunkRows ?? DEFAULT_CHUNK_ELEMENTS / Math.max(v, 1)));
}

/**
 * Mean cross-entropy of `hidden [N, H] · weightᵀ` ([V, H], a Linear's layout, or a frozen float16
 * {@link HalfMatrix}) against int32
 * `labels [N]`, rows equal to `ignoreIndex` skipped, 0 when all are: equal to
 * `softmaxCrossEntropy(linear(hidden, weight), labels)` up to summation order. The weight gets a
 * gradient only when it is a trainable variable (a frozen or tied-frozen head costs no dW GEMM).
 *
 * @example
 * const loss = chunkedLinearCrossEntropy(hidden2d, lmHead.weight, labels1d, { chunkRows: 128 });
 */
export function chunkedLinearCrossEntropy(
  hidden: Tensor,
  weight: Tensor | HalfMatrix,
  labels: Tensor,
  opts: ChunkedCrossEntropyOptions = {},
): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? IGNORE_INDEX;
  const rows = chunkRowsFor(weight instanceof HalfMatrix ? weight.rows : weight.shape[0]!, opts.chunkRows);
  const recording = (tf.engine() as unknown as EngineTape).isTapeOn();
  if (!recording) return tf.tidy(() => passes(hidden, weight, labels, rows, ignoreIndex, false).loss);
  const trainW = weight instanceof tf.Variable && weight.trainable;
  const f = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const r = passes(hidden, weight, labels, rows, ignoreIndex, true, trainW);
    save(trainW ? [r.dHidden!, r.dWeight!] : [r.dHidden!]);
    return {
      value: r.loss,
      gradFunc: (dy: Tensor, saved: Tensor[]) => saved.map((g) => tf.mul(g, dy)),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (trainW ? f(hidden, weight) : f(hidden)) as Tensor;
}

interface PassResult {
  loss: Tensor;
  dHidden?: Tensor;
  dWeight?: Tensor;
}

/** The blocks: loss, and with `grad` the gradients at dy = 1. Call inside a tidy/customGrad. */
function passes(
  hidden: Tensor,
  weight: Tensor | HalfMatrix,
  labels: Tensor,
  rows: number,
  ignoreIndex: number,
  grad: boolean,
  trainW = false,
): PassResult {
  const [n, h] = hidden.shape as [number, number];
  const flatLabels = labels.reshape([-1]).toInt(); // [N]
  const count = tf.sum(tf.notEqual(flatLabels, ignoreIndex).toFloat()); // scalar, unclamped
  let lossSum: Tensor = tf.scalar(0);
  const dh: Tensor[] = [];
  let dW: Tensor | null = null;
  for (let r0 = 0; r0 < n; r0 += rows) {
    const m = Math.min(rows, n - r0);
    const block = tf.tidy(() => {
      const hc = hidden.slice([r0, 0], [m, h]); // [m, H]
      const lc = flatLabels.slice([r0], [m]); // [m]
      // a float16 weight (a tied head, nn/half_embedding.ts) is widened a block of vocabulary rows at a time
      const logits =
        weight instanceof HalfMatrix ? matMulHalfT(hc, weight) : tf.matMul(hc, weight, false, true); // [m, V]
      const { sum, dLogits } = blockLoss(logits, lc, count, ignoreIndex, grad);
      if (!dLogits) return { sum };
      const dhc = weight instanceof HalfMatrix ? matMulHalf(dLogits, weight) : tf.matMul(dLogits, weight); // [m, H]
      const dwc = trainW ? tf.matMul(dLogits, hc, true, false) : null; // [V, H]
      return dwc ? { sum, dhc, dwc } : { sum, dhc };
    }) as { sum: Tensor; dhc?: Tensor; dwc?: Tensor };
    const next = tf.add(lossSum, block.sum);
    tf.dispose([lossSum, block.sum]);
    lossSum = next;
    if (block.dhc) dh.push(block.dhc);
    if (block.dwc) {
      const acc: Tensor = dW ? tf.add(dW, block.dwc) : block.dwc;
      if (dW) tf.dispose([dW, block.dwc]);
      dW = acc;
    }
  }
  const loss = tf.div(lossSum, tf.maximum(count, 1));
  if (!grad) return { loss };
  const dHidden = dh.length === 1 ? dh[0]! : tf.concat(dh, 0); // [N, H]
  if (dh.length > 1) tf.dispose(dh);
  return dW ? { loss, dHidden, dWeight: dW } : { loss, dHidden };
}

/** Σ −log softmax(logits)[label] over the block's valid rows, and d/dlogits of Σ/count. */
function blockLoss(
  logits: Tensor,
  labels: Tensor,
  count: Tensor,
  ignoreIndex: number,
  grad: boolean,
): { sum: Tensor; dLogits?: Tensor } {
  if (nativeFused(logits)) {
    const [mean, probs, blockCount] = runFused(FUSED.crossEntropy, { logits, labels }, { ignoreIndex });
    const sum = tf.mul(mean!, tf.maximum(blockCount!, 1)); // the kernel's mean is Σ / max(count, 1)
    if (!grad) return { sum };
    const dLogits = runFused(
      FUSED.crossEntropyGrad,
      { probs: probs!, labels, dy: tf.scalar(1), count },
      { ignoreIndex },
    )[0]!;
    return { sum, dLogits };
  }
  const v = logits.shape[1]!;
  const valid = tf.notEqual(labels, ignoreIndex); // [m]
  const validF = valid.toFloat();
  const safe = tf.where(valid, labels, tf.zerosLike(labels));
  const logProbs = tf.logSoftmax(logits); // [m, V]
  const oneHot = tf.oneHot(safe, v).toFloat(); // [m, V]
  const picked = tf.sum(tf.mul(logProbs, oneHot), -1); // [m]
  const sum = tf.neg(tf.sum(tf.mul(picked, validF)));
  if (!grad) return { sum };
  const scale = tf.div(validF, tf.maximum(count, 1)).reshape([-1, 1]); // [m, 1]
  return { sum, dLogits: tf.mul(tf.sub(tf.exp(logProbs), oneHot), scale) };
}
