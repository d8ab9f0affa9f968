/**
 * The tiny seeded models and inputs every tuner × model matrix test uses (LoRA, AdaLoRA, DoRA,
 * QLoRA): one definition so the matrices exercise the same architectures. Each factory reseeds, so a
 * model is identical wherever it is built.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import type { HFConfig, ModelInputs, PreTrainedModel } from '../models/base.js';
import { modelFromConfig } from '../models/from_config.js';
import { TinyMlp } from './tiny_mlp.js';

export const TINY_BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 30,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  max_position_embeddings: 16,
};

export const TINY_GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 30,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  n_positions: 16,
};

/** GQA (4 query heads sharing 2 key/value heads). */
export const TINY_LLAMA: HFConfig = {
  model_type: 'llama',
  vocab_size: 30,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

/** Two rows of five token ids below every tiny vocabulary. */
export const tinyIds = () =>
  tf.tensor2d(
    [
      [1, 5, 7, 2, 9],
      [3, 4, 8, 8, 6],
    ],
    [2, 5],
    'int32',
  );

/** The MLP classifier (embedding → fc1 → fc2 → classifier), in eval mode. */
export function tinyMlp(): TinyMlp {
  manualSeed(3);
  return new TinyMlp({ vocab: 12, hidden: 8, inner: 16, classes: 3 }).eval();
}

export const mlpInputs = () => ({
  inputIds: tf.tensor2d(
    [
      [1, 5, 7],
      [3, 4, 11],
    ],
    [2, 3],
    'int32',
  ),
  labels: tf.tensor1d([0, 2], 'int32'),
});

export function tinyBertClassifier(): PreTrainedModel {
  manualSeed(5);
  return modelFromConfig(TINY_BERT, { task: 'SEQ_CLS', numLabels: 3 });
}

export const clsInputs = () => ({ inputIds: tinyIds(), labels: tf.tensor1d([1, 2], 'int32') });

export function tinyGpt2Lm(): PreTrainedModel {
  manualSeed(7);
  return modelFromConfig(TINY_GPT2, { task: 'CAUSAL_LM' });
}

export function tinyLlamaLm(opts: { tieWordEmbeddings?: boolean } = {}): PreTrainedModel {
  manualSeed(9);
  return modelFromConfig(
    { ...TINY_LLAMA, tie_word_embeddings: opts.tieWordEmbeddings ?? false },
    { task: 'CAUSAL_LM' },
  );
}

export const lmInputs = () => ({ inputIds: tinyIds(), labels: tinyIds() });

/** A tiny model with the inputs it takes, to spread into a tuner-matrix case. */
export interface TinySubject {
  makeModel: () => PreTrainedModel | TinyMlp;
  makeInputs: () => ModelInputs;
}

/**
 * Each tiny model paired with its inputs, so a matrix case names one subject instead of two factories.
 * @example
 * registerTunerMatrix([{ name: 'lora × mlp', ...TINY.mlp, makeConfig: () => new LoraConfig({ r: 2 }) }]);
 */
export const TINY = {
  mlp: { makeModel: tinyMlp, makeInputs: mlpInputs },
  bertCls: { makeModel: tinyBertClassifier, makeInputs: clsInputs },
  gpt2: { makeModel: tinyGpt2Lm, makeInputs: lmInputs },
  llama: { makeModel: () => tinyLlamaLm(), makeInputs: lmInputs },
  /** Llama with `lm_head` tied to the embedding. */
  llamaTied: { makeModel: () => tinyLlamaLm({ tieWordEmbeddings: true }), makeInputs: lmInputs },
} satisfies Record<string, TinySubject>;

/**
 * The native-training case's model (tests/native_training.test.ts, bench/leak_native.ts): a
 * 2-layer, 16-wide BERT classifier with dropout on, so a step runs every fused training kernel.
 */
export const DROPOUT_BERT_CLS: HFConfig = {
  model_type: 'bert',
  vocab_size: 50,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  num_labels: 3,
};

/** Its batch: 3 rows of 8 ids with padding in the last two columns of rows 2–3, and 3 labels. */
export function dropoutBertBatch(): { inputIds: Tensor; attentionMask: Tensor; labels: Tensor } {
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 7 + 3) % 50);
  const mask = Int32Array.from({ length: 24 }, (_, i) => (i % 8 < 6 || i < 8 ? 1 : 0));
  return {
    inputIds: tf.tensor2d(ids, [3, 8], 'int32'),
    attentionMask: tf.tensor2d(mask, [3, 8], 'int32'),
    labels: tf.tensor1d([0, 2, 1], 'int32'),
  };
}
