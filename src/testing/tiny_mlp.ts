/**
 * A tiny non-transformer model for tuner tests: token embedding → mean over tokens → Linear → GELU
 * → Linear (`classifier`). It meets the `forward(ModelInputs): ModelOutput` shape tuners need without
 * being a `PreTrainedModel` (so architecture defaults and `all-linear` do not apply to it).
 *
 * @example
 * manualSeed(1);
 * const mlp = new TinyMlp({ vocab: 12, hidden: 8, inner: 16, classes: 3 });
 * mlp.forward({ inputIds: tf.tensor2d([[1, 2]], [1, 2], 'int32') }).logits; // [1, 3]
 */
import { tf } from '../tensor/tf.js';
import { Module } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { gelu, softmaxCrossEntropy } from '../tensor/ops/index.js';
import type { ModelInputs, ModelOutput } from '../models/base.js';

export interface TinyMlpSizes {
  vocab: number;
  hidden: number;
  inner: number;
  classes: number;
}

export class TinyMlp extends Module {
  declare embed: Embedding;
  declare fc1: Linear;
  declare fc2: Linear;
  declare classifier: Linear;

  constructor(readonly sizes: TinyMlpSizes) {
    super();
    this.registerModule('embed', new Embedding(sizes.vocab, sizes.hidden));
    this.registerModule('fc1', new Linear(sizes.hidden, sizes.inner));
    this.registerModule('fc2', new Linear(sizes.inner, sizes.hidden));
    this.registerModule('classifier', new Linear(sizes.hidden, sizes.classes));
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tf.tidy(() => {
      const e = this.embed.forward(inputs.inputIds); // [B, T, hidden]
      const pooled = e.mean(1); // [B, hidden]
      const h = gelu(this.fc1.forward(pooled)); // [B, inner]
      const z = tf.add(pooled, this.fc2.forward(h)); // [B, hidden]
      const logits = this.classifier.forward(z); // [B, classes]
      if (!inputs.labels) return { logits };
      return { logits, loss: softmaxCrossEntropy(logits, inputs.labels) };
    });
  }
}
