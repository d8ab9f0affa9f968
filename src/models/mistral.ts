/**
 * Mistral with Hugging Face module paths: Llama's layout (no biases) plus sliding-window attention:
 * query i sees key j only when `i − sliding_window < j ≤ i`, with i and j indexing the sequence as
 * given (pad slots included), in the full forward and with the KV cache alike.
 */
import type { HFConfig } from './base.js';
import { ConfigReader } from './config.js';
import { RopeForCausalLM, RopeForSequenceClassification, type RopeFamily } from './rope_heads.js';
import { readRopeDims, refuseDropout, slidingWindowOf, type RopeDecoderDims } from './rope_decoder.js';

/** Reads and validates a `mistral` config (HF MistralConfig defaults: window 4096, 8 kv heads). */
export function mistralDims(config: HFConfig): RopeDecoderDims {
  const r = new ConfigReader(config, 'MistralConfig');
  const dims = readRopeDims(r, {
    vocabSize: 32000,
    hidden: 4096,
    intermediate: 14336,
    nLayers: 32,
    nHead: 32,
    nKvHead: 8,
    eps: 1e-6,
    act: 'silu',
    tieWordEmbeddings: false,
  });
  refuseDropout(r, 'attention_dropout');
  const window = slidingWindowOf(config, 'MistralConfig', 4096);
  return { ...dims, windows: dims.windows.map(() => window) };
}

/** The names, config reader and block of the Mistral heads (rope_heads.ts). */
const MISTRAL: RopeFamily = { modelType: 'mistral', name: 'Mistral', dims: mistralDims };

/**
 * `MistralForCausalLM`: logits [B, T, V]; `generate` applies the window with the KV cache too.
 *
 * @example
 * const lm = new MistralForCausalLM({ model_type: 'mistral', vocab_size: 1000, hidden_size: 64,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
 *   sliding_window: 8 });
 */
export class MistralForCausalLM extends RopeForCausalLM {
  constructor(config: HFConfig) {
    super(config, MISTRAL);
  }
}

/** `MistralForSequenceClassification`: `score` (no bias) on the last non-pad token of each row. */
export class MistralForSequenceClassification extends RopeForSequenceClassification {
  constructor(config: HFConfig) {
    super(config, MISTRAL);
  }
}
