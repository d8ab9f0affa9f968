/**
 * Llama with Hugging Face module paths (`model.layers.{i}.self_attn.q_proj`, …): RMSNorm, RoPE
 * (`rope_theta`, rotate_half convention), grouped-query attention (`num_key_value_heads`), SwiGLU MLP,
 * optional tied `lm_head`. llama2.c checkpoints arrive here through io with q/k already permuted to
 * the rotate_half convention.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { activation, attention } from '../tensor/ops/index.js';
import { Module, ModuleList, type TensorLayer } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { checkpointActive, checkpointBlock, type BlockFn } from '../nn/checkpoint.js';
import { ShapeError } from '../errors.js';
import { type HFConfig, type ModelInputs } from './base.js';
import { ConfigReader } from './config.js';
import {
  additivePaddingMask,
  appendCache,
  batchShape,
  checkCache,
  mergeHeads,
  pastLength,
  repeatKv,
  rowStarts,
  splitHeads,
} from './common.js';
import { DecoderForCausalLM, DecoderForSequenceClassification, type DecoderOutput } from './decoder_heads.js';
import { applyRope, ropeTables, ropeTablesRows } from './rope.js';

export interface LlamaDims {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  nLayers: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  eps: number;
  ropeTheta: number;
  act: string;
  attentionBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
}

/** Reads and validates a `llama` config (HF LlamaConfig defaults for absent fields). */
export function llamaDims(config: HFConfig): LlamaDims {
  const r = new ConfigReader(config, 'LlamaConfig');
  const hidden = r.int('hidden_size', 4096);
  const nHead = r.int('num_attention_heads', 32);
  const nKvHead = r.int('num_key_value_heads', nHead);
  const headDim = r.int('head_dim', Math.floor(hidden / nHead));
  if (nHead % nKvHead !== 0) {
    throw new ShapeError(
      'LlamaConfig.num_key_value_heads',
      `must divide num_attention_heads (${nHead})`,
      nKvHead,
      'fix config.json',
    );
  }
  if (headDim % 2 !== 0)
    throw new ShapeError('LlamaConfig.head_dim', 'must be even for RoPE', headDim, 'fix config.json');
  r.rejectIfSet('rope_scaling', 'remove rope_scaling (only plain RoPE with rope_theta is implemented)');
  return {
    vocabSize: r.int('vocab_size', 32000),
    hidden,
    intermediate: r.int('intermediate_size', 11008),
    nLayers: r.int('num_hidden_layers', 32),
    nHead,
    nKvHead,
    headDim,
    eps: r.num('rms_norm_eps', 1e-6),
    ropeTheta: r.num('rope_theta', 10000),
    act: r.str('hidden_act', 'silu'),
    attentionBias: r.bool('attention_bias', false),
    mlpBias: r.bool('mlp_bias', false),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
  };
}

/** What each layer receives for one forward: the rotary tables and the additive mask (or null). */
export interface AttentionContext {
  rope: { cos: Tensor; sin: Tensor };
  mask: Tensor | null;
}

/** What the attention reads from a config; `oBias` absent = `attentionBias` (Llama biases all four). */
export type AttentionDims = Pick<LlamaDims, 'hidden' | 'nHead' | 'nKvHead' | 'headDim' | 'attentionBias'> & {
  oBias?: boolean;
};

/** Rotary self-attention with `nKvHead` key/value heads shared by groups of query heads. */
export class LlamaAttention extends Module {
  declare q_proj: TensorLayer;
  declare k_proj: TensorLayer;
  declare v_proj: TensorLayer;
  declare o_proj: TensorLayer;

  constructor(readonly dims: AttentionDims) {
    super();
    const { hidden, nHead, nKvHead, headDim, attentionBias: bias } = dims;
    this.registerModule('q_proj', new Linear(hidden, nHead * headDim, { bias }));
    this.registerModule('k_proj', new Linear(hidden, nKvHead * headDim, { bias }));
    this.registerModule('v_proj', new Linear(hidden, nKvHead * headDim, { bias }));
    this.registerModule('o_proj', new Linear(nHead * headDim, hidden, { bias: dims.oBias ?? bias }));
  }

  /** x [B, T, H] → output [B, T, H] and the layer's (unrepeated) keys/values including cached ones. */
  forward(x: Tensor, ctx: AttentionContext, pastK?: Tensor, pastV?: Tensor) {
    const { nHead, nKvHead, headDim } = this.dims;
    const { cos, sin } = ctx.rope;
    const q = applyRope(splitHeads(this.q_proj.forward(x), nHead, headDim), cos, sin); // [B, nHead, T, headDim]
    const kNew = applyRope(splitHeads(this.k_proj.forward(x), nKvHead, headDim), cos, sin); // [B, nKv, T, headDim]
    const k = appendCache(pastK, kNew); // [B, nKv, past + T, headDim]
    const v = appendCache(pastV, splitHeads(this.v_proj.forward(x), nKvHead, headDim)); // [B, nKv, past + T, headDim]
    const out = this.attend(q, k, v, ctx.mask); // [B, nHead, T, headDim]
    return { out: this.o_proj.forward(mergeHeads(out)), k, v }; // out [B, T, H]
  }

  /** Causal attention, each group of `nHead / nKvHead` query heads sharing one key/value head. */
  protected attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null): Tensor {
    const nRep = this.dims.nHead / this.dims.nKvHead;
    return attention(q, repeatKv(k, nRep), repeatKv(v, nRep), { mask, causal: true }); // [B, nHead, T, headDim]
  }
}

/** What the gated MLP reads from a config: Llama's dims, or any RoPE decoder's (rope_decoder.ts). */
export type GatedMLPDims = Pick<LlamaDims, 'hidden' | 'intermediate' | 'mlpBias' | 'act'>;

/** SwiGLU: `down(act(gate(x)) · up(x))` (Gemma's GeGLU is the same with tanh-GELU). */
export class LlamaMLP extends Module {
  declare gate_proj: TensorLayer;
  declare up_proj: TensorLayer;
  declare down_proj: TensorLayer;

  constructor(readonly dims: GatedMLPDims) {
    super();
    const { hidden, intermediate, mlpBias: bias } = dims;
    activation(dims.act); // fails at construction for an unknown activation
    this.registerModule('gate_proj', new Linear(hidden, intermediate, { bias }));
    this.registerModule('up_proj', new Linear(hidden, intermediate, { bias }));
    this.registerModule('down_proj', new Linear(intermediate, hidden, { bias }));
  }

  forward(x: Tensor): Tensor {
    const gated = tf.mul(activation(this.dims.act)(this.gate_proj.forward(x)), this.up_proj.forward(x)); // [B, T, I]
    return this.down_proj.forward(gated); // [B, T, H]
  }
}

/** Pre-norm block: `x + attn(norm(x))`, then `x + mlp(norm(x))`. */
export class LlamaDecoderLayer extends Module {
  declare input_layernorm: TensorLayer;
  declare self_attn: LlamaAttention;
  declare post_attention_layernorm: TensorLayer;
  declare mlp: LlamaMLP;

  constructor(dims: LlamaDims) {
    super();
    this.registerModule('input_layernorm', new RMSNorm(dims.hidden, dims.eps));
    this.registerModule('self_attn', new LlamaAttention(dims));
    this.registerModule('post_attention_layernorm', new RMSNorm(dims.hidden, dims.eps));
    this.registerModule('mlp', new LlamaMLP(dims));
  }

  forward(x: Tensor, ctx: AttentionContext, pastK?: Tensor, pastV?: Tensor) {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), ctx, pastK, pastV); // out [B, T, H]
    const h = tf.add(x, a.out); // [B, T, H]
    return { h: tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))), k: a.k, v: a.v }; // [B, T, H]
  }
}

/** The Llama trunk (`model`): embeddings, decoder layers, final norm. Call inside a tidy. */
export class LlamaModel extends Module {
  declare embed_tokens: TensorLayer;
  declare layers: ModuleList<LlamaDecoderLayer>;
  declare norm: TensorLayer;

  constructor(readonly dims: LlamaDims) {
    super();
    this.registerModule('embed_tokens', new Embedding(dims.vocabSize, dims.hidden));
    this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: dims.nLayers }, () => new LlamaDecoderLayer(dims))),
    );
    this.registerModule('norm', new RMSNorm(dims.hidden, dims.eps));
  }

  forward(inputs: ModelInputs, where: string): DecoderOutput {
    const [b, t] = batchShape(inputs, where);
    const past = inputs.pastKeyValues;
    checkCache(past, this.dims.nLayers, b, where);
    const start = pastLength(past);
    const mask = additivePaddingMask(inputs, start, where); // [B, 1, 1, past + T] or null
    const rope = rowStarts(inputs, b, where)
      ? ropeTablesRows(inputs.positionOffsets!, t, this.dims.headDim, this.dims.ropeTheta) // [B, 1, T, headDim]
      : ropeTables(start, t, this.dims.headDim, this.dims.ropeTheta); // cos, sin [1, 1, T, headDim]
    let x = this.embed_tokens.forward(inputs.inputIds); // [B, T, H]
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    this.layers.namedChildren().forEach(([, layer], i) => {
      if (checkpointActive(this, inputs)) {
        const run: BlockFn = (xi, [c, s, m]) =>
          (layer as LlamaDecoderLayer).forward(xi, { rope: { cos: c!, sin: s! }, mask: m ?? null }).h;
        return void (x = checkpointBlock(layer, x, [rope.cos, rope.sin, mask], run)); // [B, T, H]
      }
      // one tidy per layer: a forward without gradients frees each layer's intermediates as it goes
      const out = tf.tidy(() =>
        (layer as LlamaDecoderLayer).forward(x, { rope, mask }, past?.keys[i], past?.values[i]),
      ); // h [B, T, H]
      x = out.h;
      keys.push(out.k);
      values.push(out.v);
    });
    const hidden = this.norm.forward(x); // [B, T, H]
    return inputs.useCache ? { hidden, cache: { keys, values } } : { hidden };
  }
}

/**
 * `LlamaForCausalLM`: logits [B, T, V]; labels [B, T] give the shifted LM loss (-100 ignored).
 * With `tie_word_embeddings`, `lm_head.weight` is `model.embed_tokens.weight`.
 *
 * @example
 * const llama = new LlamaForCausalLM({ model_type: 'llama', vocab_size: 512, hidden_size: 64,
 *   intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4 });
 * const { logits, pastKeyValues } = llama.forward({ inputIds, useCache: true }); // logits [B, T, 512]
 */
export class LlamaForCausalLM extends DecoderForCausalLM {
  declare model: LlamaModel;
  readonly modelType = 'llama' as const;
  readonly architecture = 'LlamaForCausalLM';

  constructor(config: HFConfig) {
    const dims = llamaDims(config);
    super(config, 'model', new LlamaModel(dims), {
      embeddingName: 'embed_tokens',
      hidden: dims.hidden,
      vocabSize: dims.vocabSize,
      tieWordEmbeddings: dims.tieWordEmbeddings,
    });
  }
}

/** `LlamaForSequenceClassification`: `score` on the last non-pad token (decoder_heads.ts). */
export class LlamaForSequenceClassification extends DecoderForSequenceClassification {
  declare model: LlamaModel;
  readonly modelType = 'llama' as const;
  readonly architecture = 'LlamaForSequenceClassification';

  constructor(config: HFConfig) {
    const dims = llamaDims(config);
    super(config, 'model', new LlamaModel(dims), dims.hidden, 'LlamaConfig');
  }
}
