/**
 * The demo's character-level Llama (vocabulary: 259 byte/special ids + the demo alphabet) shrunk for
 * tests, and the folder writer that puts the demo's llama2.c tokenizer beside it.
 */
import { ALPHABET, charTokenizerFile, demoModelConfig } from '../cli/demo/language.js';
import type { HFConfig, PreTrainedModel } from '../models/base.js';
import { saveModel } from '../models/load.js';

/** Vocabulary size of the demo's character tokenizer. */
export const CHAR_VOCAB = 259 + ALPHABET.length;

/**
 * The demo's Llama config at 16 wide, 2 layers of 2 heads (no GQA), with `overrides` on top.
 *
 * @example
 * const m = modelFromConfig(charLlamaConfig({ num_hidden_layers: 1 }), { task: 'CAUSAL_LM' });
 */
export function charLlamaConfig(overrides: HFConfig = {}): HFConfig {
  return {
    ...demoModelConfig(CHAR_VOCAB),
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    ...overrides,
  };
}

/**
 * Saves `m` as a Hugging Face folder with the demo's character tokenizer as `tok.bin`.
 *
 * @example
 * await saveCharModel(modelFromConfig(charLlamaConfig(), { task: 'CAUSAL_LM' }), dir);
 */
export async function saveCharModel(m: PreTrainedModel, dir: string): Promise<void> {
  await saveModel(m, dir, { tokenizerFiles: { 'tok.bin': charTokenizerFile(ALPHABET) } });
}
