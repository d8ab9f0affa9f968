/**
 * A tiny bag-of-embeddings classifier and causal LM used by the trainer's tests: small enough for
 * hundreds of steps in a test, with dropout so RNG restore matters.
 */
import { tf } from '../tensor/tf.js';
import { Module } from '../nn/module.js';
import { Dropout, Embedding, Linear } from '../nn/layers.js';
import { softmaxCrossEntropy } from '../tensor/ops/loss.js';
import type { ModelInputs, ModelOutput } from '../models/base.js';

/**
 * Mean-pooled embeddings → dropout → linear head (classification), or per-token logits (causal LM).
 * @example const m = new ToyModel(16, 8, 2); m.forward({ inputIds, labels });
 */
export class ToyModel extends Module {
  declare embed: Embedding;
  declare drop: Dropout;
  declare head: Linear;
  /** When set, forward returns a NaN loss (to exercise the trainer's non-finite handling). */
  poison = false;

  constructor(
    vocab: number,
    dim: number,
    readonly outputs: number,
    readonly causal = false,
  ) {
    super();
    this.registerModule('embed', new Embedding(vocab, dim));
    this.registerModule('drop', new Dropout(0.1));
    this.registerModule('head', new Linear(dim, outputs));
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tf.tidy(() => {
      const h = this.embed.forward(inputs.inputIds); // [B, T, D]
      const mask = (inputs.attentionMask ?? tf.onesLike(inputs.inputIds)).toFloat().expandDims(-1); // [B, T, 1]
      if (this.causal) {
        const logits = this.head.forward(this.drop.forward(h)); // [B, T, V]
        if (!inputs.labels) return { logits };
        const T = logits.shape[1]!;
        const shifted = logits.slice([0, 0, 0], [-1, T - 1, -1]); // [B, T-1, V]
        const targets = inputs.labels.slice([0, 1], [-1, T - 1]); // [B, T-1]
        return { logits, loss: softmaxCrossEntropy(shifted, targets) };
      }
      const pooled = h.mul(mask).sum(1).div(mask.sum(1)); // [B, D]
      const logits = this.head.forward(this.drop.forward(pooled)); // [B, C]
      if (!inputs.labels) return { logits };
      let loss = softmaxCrossEntropy(logits, inputs.labels);
      if (this.poison) loss = loss.mul(NaN);
      return { logits, loss };
    });
  }
}
