/**
 * The reference encoder of the benchmark (issue 2): BERT, 6 layers, hidden 384, 6 heads, FFN 1536,
 * sequence 128, batch 8, 2-label classification head, built with the project's own
 * BertForSequenceClassification, plus one training step (forward, backward, AdamW). Run directly it
 * is the step benchmark of issue 17 (bench/encoder_bench.ts has the options).
 */
import { pathToFileURL } from 'node:url';
import { tf, type Tensor, type Variable } from '../src/tensor/tf.js';
import { BertForSequenceClassification } from '../src/models/bert_classification.js';
import { manualSeed } from '../src/nn/init.js';
import { AdamW } from '../src/training/optim.js';
import { Rng } from '../src/util/rng.js';

export interface EncoderShape {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  seq: number;
  batch: number;
  vocab: number;
}

export const REFERENCE: EncoderShape = {
  layers: 6,
  hidden: 384,
  heads: 6,
  ffn: 1536,
  seq: 128,
  batch: 8,
  vocab: 30522,
};

/** HF config for the shape (dropout 0.1 as BERT; the bench runs in train mode like PyTorch's). */
export function encoderConfig(s: EncoderShape): Record<string, unknown> {
  return {
    model_type: 'bert',
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    intermediate_size: s.ffn,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: 512,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    num_labels: 2,
  };
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  labels: Tensor;
}

/** A fixed random batch; the last quarter of each sequence is padding. */
export function randomBatch(s: EncoderShape, seed = 1): Batch {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: s.batch * s.seq }, () => rng.int(s.vocab));
  const mask = Float32Array.from({ length: s.batch * s.seq }, (_, i) =>
    i % s.seq < (s.seq * 3) / 4 ? 1 : 0,
  );
  const labels = Int32Array.from({ length: s.batch }, () => rng.int(2));
  return {
    inputIds: tf.tensor2d(ids, [s.batch, s.seq], 'int32'),
    attentionMask: tf.tensor2d(mask, [s.batch, s.seq], 'int32'),
    labels: tf.tensor1d(labels, 'int32'),
  };
}

export function buildEncoder(s: EncoderShape, seed = 0): BertForSequenceClassification {
  manualSeed(seed);
  const model = new BertForSequenceClassification(encoderConfig(s));
  model.train();
  return model;
}

/**
 * One training step over `vars` (all trainable parameters unless given); returns the loss.
 * @example const loss = trainStep(model, opt, batch, vars);
 */
export function trainStep(
  model: BertForSequenceClassification,
  opt: AdamW,
  batch: Batch,
  vars: Variable[],
): number {
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forward({
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
      labels: batch.labels,
    });
    const loss = out.loss!;
    tf.dispose(out.logits);
    return loss as tf.Scalar;
  }, vars);
  opt.step(grads);
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}

// `node --import tsx bench/encoder.ts [options]` runs issue 17's step benchmark (bench/encoder_bench.ts).
// Not awaited: encoder_bench.ts imports this module, which must finish evaluating first.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  import('./encoder_bench.js').catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
