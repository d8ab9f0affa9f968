/**
 * Gemma and Gemma 2 with Hugging Face module paths. Gemma: RMSNorm by (1 + w), the embedding output
 * scaled by √hidden (rounded to float32 as HF builds it), GeGLU MLP (`hidden_activation`, tanh GELU),
 * lm_head tied to the embedding by default. Gemma 2 adds post-attention and pre/post-feed-forward norms,
 * the score scale `query_pre_attn_scalar^−½`, attention and final-logit soft-capping, and a sliding
 * window on even layers only.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { Module, type TensorLayer } from '../nn/module.js';
import type { HFConfig } from './base.js';
import { ConfigReader } from './config.js';
import { RopeForCausalLM, RopeForSequenceClassification, type RopeFamily } from './rope_heads.js';
import {
  GatedMLP,
  makeNorm,
  optionalPositive,
  readRopeDims,
  refuseDropout,
  RopeAttention,
  slidingWindowOf,
  type LayerContext,
  type RopeDecoderDims,
  type RopeDefaults,
  type RopeLayer,
} from './rope_decoder.js';

const GEMMA_DEFAULTS: RopeDefaults = {
  vocabSize: 256000,
  hidden: 3072,
  intermediate: 24576,
  nLayers: 28,
  nHead: 16,
  headDim: 256,
  eps: 1e-6,
  act: 'gelu_pytorch_tanh',
  actKey: 'hidden_activation',
  tieWordEmbeddings: true,
};

/** HF Gemma2Config's defaults (Gemma 2 2B). */
const GEMMA2_DEFAULTS: RopeDefaults = {
  ...GEMMA_DEFAULTS,
  hidden: 2304,
  intermediate: 9216,
  nLayers: 26,
  nHead: 8,
  nKvHead: 4,
};

/** Reads and validates a `gemma` config (HF GemmaConfig defaults: head_dim 256, tied embeddings). */
export function gemmaDims(
  config: HFConfig,
  where = 'GemmaConfig',
  defaults = GEMMA_DEFAULTS,
): RopeDecoderDims {
  const r = new ConfigReader(config, where);
  const dims = readRopeDims(r, defaults);
  refuseDropout(r, 'attention_dropout');
  const bias = r.bool('attention_bias', false);
  return {
    ...dims,
    qkvBias: bias,
    oBias: bias,
    normOffset: true,
    embedScale: Math.fround(Math.sqrt(dims.hidden)),
  };
}

/** Reads and validates a `gemma2` config (HF Gemma2Config defaults for soft-capping and the window). */
export function gemma2Dims(config: HFConfig): RopeDecoderDims {
  const where = 'Gemma2Config';
  const r = new ConfigReader(config, where);
  const dims = gemmaDims(config, where, GEMMA2_DEFAULTS);
  const window = slidingWindowOf(config, where, 4096);
  return {
    ...dims,
    // HF Gemma2DecoderLayer: `is_sliding = not bool(layer_idx % 2)`
    windows: dims.windows.map((_, i) => (i % 2 === 0 ? window : null)),
    scoreScale: Math.pow(r.num('query_pre_attn_scalar', 256), -0.5),
    attnSoftcap: optionalPositive(config, 'attn_logit_softcapping', where, 50),
    finalSoftcap: optionalPositive(config, 'final_logit_softcapping', where, 30),
  };
}

/**
 * Gemma 2 block: `h = x + post_attention_layernorm(attn(input_layernorm(x)))`, then
 * `h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))`.
 */
export class Gemma2DecoderLayer extends Module implements RopeLayer {
  declare input_layernorm: TensorLayer;
  declare self_attn: RopeAttention;
  declare post_attention_layernorm: TensorLayer;
  declare pre_feedforward_layernorm: TensorLayer;
  declare mlp: GatedMLP;
  declare post_feedforward_layernorm: TensorLayer;

  constructor(dims: RopeDecoderDims) {
    super();
    this.registerModule('input_layernorm', makeNorm(dims));
    this.registerModule('self_attn', new RopeAttention(dims));
    this.registerModule('post_attention_layernorm', makeNorm(dims));
    this.registerModule('pre_feedforward_layernorm', makeNorm(dims));
    this.registerModule('mlp', new GatedMLP(dims));
    this.registerModule('post_feedforward_layernorm', makeNorm(dims));
  }

  forward(x: Tensor, ctx: LayerContext, pastK?: Tensor, pastV?: Tensor) {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), ctx, pastK, pastV); // out [B, T, H]
    const h = tf.add(x, this.post_attention_layernorm.forward(a.out)); // [B, T, H]
    const m = this.mlp.forward(this.pre_feedforward_layernorm.forward(h)); // [B, T, H]
    return { h: tf.add(h, this.post_feedforward_layernorm.forward(m)), k: a.k, v: a.v };
  }
}

/** The names, config readers and blocks of the Gemma and Gemma 2 heads (rope_heads.ts). */
const GEMMA: RopeFamily = { modelType: 'gemma', name: 'Gemma', dims: gemmaDims };
const GEMMA2: RopeFamily = {
  modelType: 'gemma2',
  name: 'Gemma2',
  dims: gemma2Dims,
  layer: (dims) => new Gemma2DecoderLayer(dims),
};

/**
 * `GemmaForCausalLM`: logits [B, T, V] from the tied, unscaled embedding matrix.
 *
 * @example
 * const lm = new GemmaForCausalLM({ model_type: 'gemma', vocab_size: 1000, hidden_size: 64, head_dim: 16,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 });
 */
export class GemmaForCausalLM extends RopeForCausalLM {
  constructor(config: HFConfig) {
    super(config, GEMMA);
  }
}

/** `GemmaForSequenceClassification`: `score` on the last non-pad token. */
export class GemmaForSequenceClassification extends RopeForSequenceClassification {
  constructor(config: HFConfig) {
    super(config, GEMMA);
  }
}

/**
 * `Gemma2ForCausalLM`: logits [B, T, V] soft-capped by `final_logit_softcapping`.
 *
 * @example
 * const lm = new Gemma2ForCausalLM({ model_type: 'gemma2', vocab_size: 1000, hidden_size: 64, head_dim: 16,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
 *   query_pre_attn_scalar: 32, sliding_window: 8 });
 */
export class Gemma2ForCausalLM extends RopeForCausalLM {
  constructor(config: HFConfig) {
    super(config, GEMMA2);
  }
}

/** `Gemma2ForSequenceClassification`: `score` on the last non-pad token (no final soft-capping, as HF). */
export class Gemma2ForSequenceClassification extends RopeForSequenceClassification {
  constructor(config: HFConfig) {
    super(config, GEMMA2);
  }
}
