import { tf, type Tensor } from '../tf.js';
import { FUSED, customGrad1, nativeFused, runFused } from './fused.js';

/** PyTorch's default `ignore_index` for cross-entropy. */
export const IGNORE_INDEX = -100;

/**
 * Mean softmax cross-entropy of `logits` [N, C] against int32 `labels` [N], skipping labels equal
 * to `ignoreIndex` (PyTorch `F.cross_entropy(reduction='mean')`). Returns a scalar; 0 if every label
 * is ignored (PyTorch returns NaN there; a skipped batch should not poison a run).
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, ignoreIndex = IGNORE_INDEX): Tensor {
  if (nativeFused(logits)) return tf.tidy(() => fusedCrossEntropy(logits, labels, ignoreIndex));
  return tf.tidy(() => {
    const numClasses = logits.shape[logits.shape.length - 1]!;
    const flatLogits = logits.reshape([-1, numClasses]); // [N, C]
    const flatLabels = labels.reshape([-1]).toInt(); // [N]
    const valid = tf.notEqual(flatLabels, ignoreIndex); // [N]
    const safeLabels = tf.where(valid, flatLabels, tf.zerosLike(flatLabels));
    const logProbs = tf.logSoftmax(flatLogits); // [N, C]
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(safeLabels, numClasses)), -1); // [N]
    const validF = valid.toFloat();
    const count = tf.maximum(tf.sum(validF), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, validF))), count);
  });
}

/**
 * The same loss as one native kernel (softmax, pick, mean over valid rows) whose gradient
 * `(softmax − onehot)·dy/count` reuses the saved probabilities. Labels get no gradient.
 */
function fusedCrossEntropy(logits: Tensor, labels: Tensor, ignoreIndex: number): Tensor {
  const numClasses = logits.shape[logits.shape.length - 1]!;
  const flatLogits = logits.reshape([-1, numClasses]); // [N, C]
  const flatLabels = labels.reshape([-1]).toInt(); // [N]
  const f = customGrad1((x, save) => {
    const [loss, probs, count] = runFused(
      FUSED.crossEntropy,
      { logits: x, labels: flatLabels },
      { ignoreIndex },
    );
    save([probs!, count!, flatLabels]);
    return {
      value: loss!,
      gradFunc: (dy, [p, c, l]) =>
        runFused(FUSED.crossEntropyGrad, { probs: p!, labels: l!, dy, count: c! }, { ignoreIndex })[0]!,
    };
  });
  return f(flatLogits);
}

/** Mean squared error (regression heads, `num_labels == 1`). */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  return tf.tidy(() => tf.mean(tf.squaredDifference(pred.reshape([-1]), target.reshape([-1]).toFloat())));
}
