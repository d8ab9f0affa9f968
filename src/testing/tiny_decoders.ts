/**
 * Tiny configs of the issue-15 decoders (Qwen2, Mistral, Gemma, Gemma 2, Phi-3) shared by their tuner
 * matrix and property tests: hidden 16, 4 query heads over 2 key/value heads of dim 4, a sliding window
 * of 3 (Mistral, Gemma 2's even layers) so 5-token inputs already cross it, Gemma 2 soft-capping on.
 */
import type { HFConfig } from '../models/base.js';
import { TINY_LLAMA } from './tiny_models.js';

const common = { ...TINY_LLAMA, pad_token_id: 0 };

export const TINY_DECODERS: Record<string, HFConfig> = {
  qwen2: { ...common, model_type: 'qwen2' },
  mistral: { ...common, model_type: 'mistral', sliding_window: 3 },
  gemma: { ...common, model_type: 'gemma', head_dim: 4 },
  gemma2: {
    ...common,
    model_type: 'gemma2',
    head_dim: 4,
    sliding_window: 3,
    query_pre_attn_scalar: 8,
    attn_logit_softcapping: 1.5,
    final_logit_softcapping: 4,
  },
  phi3: { ...common, model_type: 'phi3' },
};

/**
 * DeBERTa-v3-style encoder (shared keys, p2c + c2p, log buckets of 8 over 32 positions so 5-token
 * inputs stay linear and 20-token ones reach the log buckets), 3 labels.
 */
export const TINY_DEBERTA: HFConfig = {
  model_type: 'deberta-v2',
  vocab_size: 30,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 32,
  relative_attention: true,
  position_buckets: 8,
  max_relative_positions: -1,
  pos_att_type: ['p2c', 'c2p'],
  share_att_key: true,
  norm_rel_ebd: 'layer_norm',
  position_biased_input: false,
  type_vocab_size: 0,
  pad_token_id: 0,
  id2label: { 0: 'a', 1: 'b', 2: 'c' },
};
