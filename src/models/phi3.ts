/**
 * Phi-3 with Hugging Face module paths: fused projections and no biases. `qkv_proj` [H → (nHead +
 * 2·nKv)·d] holds q, then k, then v along its output rows; `gate_up_proj` [H → 2·I] holds gate then up.
 * Adapters attach to the fused Linear as one module (as PEFT does), so their output is split the same
 * way as the base output. Sliding window as Mistral when `sliding_window` is set (HF builds its mask
 * the same way); LongRoPE (`rope_scaling`) and partial rotary embeddings are refused.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { activation } from '../tensor/ops/index.js';
import { Module, type TensorLayer } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { HFConfig } from './base.js';
import { ConfigReader } from './config.js';
import { appendCache, mergeHeads, splitHeads } from './common.js';
import { RopeForCausalLM, RopeForSequenceClassification, type RopeFamily } from './rope_heads.js';
import { applyRope } from './rope.js';
import {
  makeNorm,
  readRopeDims,
  refuseDropout,
  ropeAttention,
  slidingWindowOf,
  type LayerContext,
  type RopeDecoderDims,
  type RopeLayer,
} from './rope_decoder.js';

/** Reads and validates a `phi3` config (HF Phi3Config defaults; dropouts must be 0). */
export function phi3Dims(config: HFConfig): RopeDecoderDims {
  const r = new ConfigReader(config, 'Phi3Config');
  const dims = readRopeDims(r, {
    vocabSize: 32064,
    hidden: 3072,
    intermediate: 8192,
    nLayers: 32,
    nHead: 32,
    eps: 1e-5,
    act: 'silu',
    tieWordEmbeddings: false,
  });
  for (const key of ['attention_dropout', 'resid_pdrop', 'embd_pdrop']) refuseDropout(r, key);
  // Phi-4-mini's checkpoints rotate only part of each head (`partial_rotary_factor` 0.75)
  if (r.num('partial_rotary_factor', 1) !== 1)
    r.rejectIfSet(
      'partial_rotary_factor',
      'remove partial_rotary_factor (only full-head RoPE is implemented)',
    );
  const window = slidingWindowOf(config, 'Phi3Config', null);
  return { ...dims, windows: dims.windows.map(() => window) };
}

/** Attention with one fused `qkv_proj`: output rows [0, nHead·d) are q, then nKv·d of k, then v. */
export class Phi3Attention extends Module {
  declare qkv_proj: TensorLayer;
  declare o_proj: TensorLayer;

  constructor(readonly dims: RopeDecoderDims) {
    super();
    const { hidden, nHead, nKvHead, headDim } = dims;
    this.registerModule('qkv_proj', new Linear(hidden, (nHead + 2 * nKvHead) * headDim, { bias: false }));
    this.registerModule('o_proj', new Linear(nHead * headDim, hidden, { bias: false }));
  }

  forward(x: Tensor, ctx: LayerContext, pastK?: Tensor, pastV?: Tensor) {
    const { nHead, nKvHead, headDim } = this.dims;
    const { cos, sin } = ctx.rope;
    const qkv = this.qkv_proj.forward(x); // [B, T, (nHead + 2·nKv)·d]
    const [qf, kf, vf] = tf.split(qkv, [nHead * headDim, nKvHead * headDim, nKvHead * headDim], 2);
    const q = applyRope(splitHeads(qf!, nHead, headDim), cos, sin); // [B, nHead, T, d]
    const k = appendCache(pastK, applyRope(splitHeads(kf!, nKvHead, headDim), cos, sin)); // [B, nKv, past + T, d]
    const v = appendCache(pastV, splitHeads(vf!, nKvHead, headDim)); // [B, nKv, past + T, d]
    const out = ropeAttention(q, k, v, ctx.mask, this.dims); // [B, nHead, T, d]
    return { out: this.o_proj.forward(mergeHeads(out)), k, v }; // out [B, T, H]
  }
}

/** MLP with one fused `gate_up_proj`: `down(up · act(gate))`, gate = first I outputs, up = the rest. */
export class Phi3MLP extends Module {
  declare gate_up_proj: TensorLayer;
  declare down_proj: TensorLayer;

  constructor(readonly dims: RopeDecoderDims) {
    super();
    activation(dims.act); // fails at construction for an unknown activation
    this.registerModule('gate_up_proj', new Linear(dims.hidden, 2 * dims.intermediate, { bias: false }));
    this.registerModule('down_proj', new Linear(dims.intermediate, dims.hidden, { bias: false }));
  }

  forward(x: Tensor): Tensor {
    const [gate, up] = tf.split(this.gate_up_proj.forward(x), 2, 2); // 2 × [B, T, I]
    return this.down_proj.forward(tf.mul(up!, activation(this.dims.act)(gate!))); // [B, T, H]
  }
}

/** Pre-norm block `x + attn(norm(x))`, `x + mlp(norm(x))` (residual dropouts are 0). */
export class Phi3DecoderLayer extends Module implements RopeLayer {
  declare input_layernorm: TensorLayer;
  declare self_attn: Phi3Attention;
  declare post_attention_layernorm: TensorLayer;
  declare mlp: Phi3MLP;

  constructor(dims: RopeDecoderDims) {
    super();
    this.registerModule('input_layernorm', makeNorm(dims));
    this.registerModule('self_attn', new Phi3Attention(dims));
    this.registerModule('post_attention_layernorm', makeNorm(dims));
    this.registerModule('mlp', new Phi3MLP(dims));
  }

  forward(x: Tensor, ctx: LayerContext, pastK?: Tensor, pastV?: Tensor) {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), ctx, pastK, pastV); // out [B, T, H]
    const h = tf.add(x, a.out); // [B, T, H]
    return { h: tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))), k: a.k, v: a.v };
  }
}

/** The names, config reader and block of the Phi3 heads (rope_heads.ts). */
const PHI3: RopeFamily = {
  modelType: 'phi3',
  name: 'Phi3',
  dims: phi3Dims,
  layer: (dims) => new Phi3DecoderLayer(dims),
};

/**
 * `Phi3ForCausalLM`: logits [B, T, V].
 *
 * @example
 * const lm = new Phi3ForCausalLM({ model_type: 'phi3', vocab_size: 1000, hidden_size: 64,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 });
 */
export class Phi3ForCausalLM extends RopeForCausalLM {
  constructor(config: HFConfig) {
    super(config, PHI3);
  }
}

/** `Phi3ForSequenceClassification`: `score` on the last non-pad token. */
export class Phi3ForSequenceClassification extends RopeForSequenceClassification {
  constructor(config: HFConfig) {
    super(config, PHI3);
  }
}
