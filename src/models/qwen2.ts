/**
 * Qwen2 / Qwen2.5 with Hugging Face module paths: Llama's layout with biases on q_proj, k_proj and
 * v_proj (not on o_proj or the MLP), RMSNorm eps 1e-6, untied lm_head by default.
 * `use_sliding_window: true` is refused (Qwen2's per-layer `max_window_layers` rule is not implemented).
 */
import type { HFConfig } from './base.js';
import { ConfigReader } from './config.js';
import { RopeForCausalLM, RopeForSequenceClassification, type RopeFamily } from './rope_heads.js';
import { readRopeDims, refuseDropout, type RopeDecoderDims } from './rope_decoder.js';
import { NotSupportedError } from '../errors.js';

/** Reads and validates a `qwen2` config (HF Qwen2Config defaults for absent fields). */
export function qwen2Dims(config: HFConfig): RopeDecoderDims {
  const r = new ConfigReader(config, 'Qwen2Config');
  const dims = readRopeDims(r, {
    vocabSize: 151936,
    hidden: 4096,
    intermediate: 22016,
    nLayers: 32,
    nHead: 32,
    eps: 1e-6,
    act: 'silu',
    tieWordEmbeddings: false,
  });
  if (r.bool('use_sliding_window', false)) {
    throw new NotSupportedError(
      'Qwen2Config.use_sliding_window',
      '"use_sliding_window" = true',
      'set use_sliding_window to false (released Qwen2/2.5 checkpoints ship with it false)',
    );
  }
  refuseDropout(r, 'attention_dropout');
  return { ...dims, qkvBias: true };
}

/** The names, config reader and block of the Qwen2 heads (rope_heads.ts). */
const QWEN2: RopeFamily = { modelType: 'qwen2', name: 'Qwen2', dims: qwen2Dims };

/**
 * `Qwen2ForCausalLM`: logits [B, T, V] for every position; labels give the shifted LM loss.
 *
 * @example
 * const lm = new Qwen2ForCausalLM({ model_type: 'qwen2', vocab_size: 1000, hidden_size: 64,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 });
 * const { logits } = lm.forward({ inputIds }); // [B, T, 1000]
 */
export class Qwen2ForCausalLM extends RopeForCausalLM {
  constructor(config: HFConfig) {
    super(config, QWEN2);
  }
}

/** `Qwen2ForSequenceClassification`: `score` (no bias) on the last non-pad token of each row. */
export class Qwen2ForSequenceClassification extends RopeForSequenceClassification {
  constructor(config: HFConfig) {
    super(config, QWEN2);
  }
}
