/**
 * The small GPT-2, Llama (GQA, tied embeddings) and BERT configs of the model tests (vocabulary 40 / 30,
 * hidden 16), the 64-wide GPT-2 and Llama of the training conformance cases and 4-bit tests, and small
 * tensor helpers for them.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import type { HFConfig, KVCache } from '../models/base.js';

export const SMALL_GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 40,
  n_embd: 16,
  n_layer: 2,
  n_head: 4,
  n_positions: 32,
};
export const SMALL_LLAMA: HFConfig = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rope_theta: 500,
  tie_word_embeddings: true,
};
export const SMALL_BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 30,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 16,
};

/**
 * GPT-2 64 wide (vocabulary 96, 2 layers of 4 heads, 32 positions): wide enough that a training step's
 * reductions differ between backends, small enough for every backend in the conformance suite.
 */
export const GPT2_64: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 96,
  n_embd: 64,
  n_layer: 2,
  n_head: 4,
  n_positions: 32,
};
/**
 * Llama 64 wide (vocabulary 96, 4 query heads over 2 key/value heads, untied head): its linear layers'
 * inputs are one 4-bit quantisation block of 64.
 */
export const LLAMA_64 = {
  model_type: 'llama',
  vocab_size: 96,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
} satisfies HFConfig;

/** An int32 [rows, cols] id tensor. */
export function ids(rows: number[][]): Tensor {
  return tf.tensor2d(rows, undefined, 'int32');
}

/** Disposes every key and value tensor of a cache (absent: nothing). */
export function disposeCache(c: KVCache | undefined): void {
  c?.keys.forEach((t) => t.dispose());
  c?.values.forEach((t) => t.dispose());
}
