/**
 * Evaluation pass: mean loss (token-weighted for causal LM), perplexity, and task metrics, with the
 * model in eval mode (no dropout) and every intermediate tensor disposed.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { readAll } from '../tensor/read.js';
import { mseLoss, softmaxCrossEntropy } from '../tensor/ops/loss.js';
import type { Example } from './data/dataset.js';
import { collate, evalBatches } from './data/loader.js';
import { computeMetrics, perplexity, type MetricTask } from './metrics.js';
import type { TrainableModel } from './types.js';

/**
 * Mean loss as the models compute it: causal LM shifts labels by one (HF), classification is
 * cross-entropy, regression is MSE.
 */
export function taskLoss(
  logits: Tensor,
  labels: Tensor,
  task: 'classification' | 'regression' | 'causal_lm',
): Tensor {
  return tf.tidy(() => {
    if (task === 'regression') return mseLoss(logits, labels);
    if (task === 'classification') return softmaxCrossEntropy(logits, labels);
    const [, T, V] = logits.shape as [number, number, number];
    const shifted = logits.slice([0, 0, 0], [-1, T - 1, V]); // [B, T-1, V]
    const targets = labels.slice([0, 1], [-1, T - 1]); // [B, T-1]
    return softmaxCrossEntropy(shifted, targets);
  });
}

export interface EvalResult {
  loss: number;
  perplexity?: number;
  metrics: Record<string, number>;
  /** Number of examples (classification) or predicted tokens (causal LM) averaged over. */
  count: number;
}

/**
 * Evaluates `model` on `examples`; restores the training mode it found.
 *
 * @example
 * const r = await evaluate(peft, evalSet, 'causal_lm', 'causal_lm', 16, tok.padTokenId); r.perplexity;
 */
export async function evaluate(
  model: TrainableModel,
  examples: Example[],
  task: 'classification' | 'regression' | 'causal_lm',
  metricTask: MetricTask,
  batchSize: number,
  padId: number,
): Promise<EvalResult> {
  const wasTraining = (model as { training?: boolean }).training !== false;
  model.eval();
  let lossSum = 0;
  let count = 0;
  const preds: number[] = [];
  const labels: number[] = [];
  try {
    for (const group of evalBatches(examples, batchSize)) {
      const batch = collate(group, task, padId);
      try {
        const { lossT, predT } = tf.tidy(() => {
          // the loss is recomputed from the logits so that terms a tuner adds to the training loss
          // (AdaLoRA's orthogonal regulariser) do not inflate the reported validation loss
          const out = model.forward({
            inputIds: batch.inputIds,
            attentionMask: batch.attentionMask,
            tokenTypeIds: batch.tokenTypeIds,
            condition: batch.condition,
          });
          const lossT = taskLoss(out.logits, batch.labels, task);
          const p =
            task === 'classification'
              ? out.logits.argMax(-1)
              : task === 'regression'
                ? out.logits.reshape([-1])
                : undefined;
          return { lossT, predT: p };
        });
        // read asynchronously (GPU backends, src/tensor/read.ts); both downloads overlap
        const [lossV, predV] = await readAll(predT ? [lossT, predT] : [lossT]).finally(() =>
          tf.dispose(predT ? [lossT, predT] : [lossT]),
        );
        const loss = lossV![0]!;
        const pred = predV ? Array.from(predV) : [];
        const weight =
          task === 'causal_lm'
            ? group.reduce((s, e) => s + Math.max(0, e.inputIds.length - 1), 0)
            : group.length;
        lossSum += loss * weight;
        count += weight;
        preds.push(...pred);
        if (task !== 'causal_lm') labels.push(...group.map((e) => e.label));
      } finally {
        tf.dispose(Object.values(batch));
      }
    }
  } finally {
    if (wasTraining) model.train(true);
  }
  const loss = count > 0 ? lossSum / count : NaN;
  if (task === 'causal_lm') return { loss, perplexity: perplexity(loss), metrics: {}, count };
  return { loss, metrics: computeMetrics(metricTask, preds, labels), count };
}
