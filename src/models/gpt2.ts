/**
 * GPT-2 with Hugging Face module paths (`transformer.h.{i}.attn.c_attn`, …). The Conv1D weights are
 * stored [in, out] exactly as in the checkpoint (`Linear` with `fanInFanOut`), so nothing is transposed
 * on load. `lm_head` shares `transformer.wte.weight` (unless `tie_word_embeddings` is false).
 *
 * Dropout: `embd_pdrop` and `resid_pdrop` are applied in training as in HF; `attn_pdrop` (on the
 * attention probabilities) is not, because the shared `attention` op has no dropout input.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { activation, attention } from '../tensor/ops/index.js';
import { Module, ModuleList, type TensorLayer } from '../nn/module.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { ShapeError } from '../errors.js';
import { type HFConfig, type ModelInputs } from './base.js';
import { ConfigReader } from './config.js';
import { DecoderForCausalLM, DecoderForSequenceClassification, type DecoderOutput } from './decoder_heads.js';
import {
  additivePaddingMask,
  appendCache,
  batchShape,
  checkCache,
  mergeHeads,
  pastLength,
  rowStarts,
  splitHeads,
} from './common.js';

export interface GPT2Dims {
  vocabSize: number;
  hidden: number;
  nLayers: number;
  nHead: number;
  headDim: number;
  inner: number;
  maxPositions: number;
  eps: number;
  act: string;
  embdDropout: number;
  residDropout: number;
}

/** Reads and validates a `gpt2` config (HF defaults for absent fields). */
export function gpt2Dims(config: HFConfig): GPT2Dims {
  const r = new ConfigReader(config, 'GPT2Config');
  const hidden = r.int('n_embd', 768);
  const nHead = r.int('n_head', 12);
  if (hidden % nHead !== 0) {
    throw new ShapeError(
      'GPT2Config.n_embd',
      `must be divisible by n_head (${nHead})`,
      hidden,
      'fix config.json',
    );
  }
  if (config.scale_attn_weights === false)
    r.rejectIfSet('scale_attn_weights', 'use scale_attn_weights: true');
  if (config.scale_attn_by_inverse_layer_idx === true) {
    r.rejectIfSet('scale_attn_by_inverse_layer_idx', 'use scale_attn_by_inverse_layer_idx: false');
  }
  if (config.reorder_and_upcast_attn === true) r.rejectIfSet('reorder_and_upcast_attn', 'set it to false');
  return {
    vocabSize: r.int('vocab_size', 50257),
    hidden,
    nLayers: r.int('n_layer', 12),
    nHead,
    headDim: hidden / nHead,
    inner: r.int('n_inner', 4 * hidden),
    maxPositions: r.int('n_positions', 1024),
    eps: r.num('layer_norm_epsilon', 1e-5),
    act: r.str('activation_function', 'gelu_new'),
    embdDropout: r.prob('embd_pdrop', 0.1),
    residDropout: r.prob('resid_pdrop', 0.1),
  };
}

/** Causal self-attention with the fused `c_attn` projection (q, k, v side by side). */
export class GPT2Attention extends Module {
  declare c_attn: TensorLayer;
  declare c_proj: TensorLayer;
  declare resid_dropout: Dropout;

  constructor(readonly dims: GPT2Dims) {
    super();
    this.registerModule('c_attn', new Linear(dims.hidden, 3 * dims.hidden, { fanInFanOut: true }));
    this.registerModule('c_proj', new Linear(dims.hidden, dims.hidden, { fanInFanOut: true }));
    this.registerModule('resid_dropout', new Dropout(dims.residDropout));
  }

  /** x [B, T, H] → output [B, T, H] and this layer's keys/values including the cached ones. */
  forward(
    x: Tensor,
    mask: Tensor | null,
    pastK?: Tensor,
    pastV?: Tensor,
  ): { out: Tensor; k: Tensor; v: Tensor } {
    const { nHead, headDim, hidden } = this.dims;
    const qkv = this.c_attn.forward(x); // [B, T, 3H]
    const [qh, kh, vh] = tf.split(qkv, [hidden, hidden, hidden], -1); // 3 × [B, T, H]
    const q = splitHeads(qh!, nHead, headDim); // [B, nHead, T, headDim]
    const k = appendCache(pastK, splitHeads(kh!, nHead, headDim)); // [B, nHead, past + T, headDim]
    const v = appendCache(pastV, splitHeads(vh!, nHead, headDim)); // [B, nHead, past + T, headDim]
    const ctx = mergeHeads(attention(q, k, v, { mask, causal: true })); // [B, T, H]
    return { out: this.resid_dropout.forward(this.c_proj.forward(ctx)), k, v }; // [B, T, H]
  }
}

export class GPT2MLP extends Module {
  declare c_fc: TensorLayer;
  declare c_proj: TensorLayer;
  declare dropout: Dropout;

  constructor(readonly dims: GPT2Dims) {
    super();
    this.registerModule('c_fc', new Linear(dims.hidden, dims.inner, { fanInFanOut: true }));
    this.registerModule('c_proj', new Linear(dims.inner, dims.hidden, { fanInFanOut: true }));
    this.registerModule('dropout', new Dropout(dims.residDropout));
  }

  forward(x: Tensor): Tensor {
    const h = activation(this.dims.act)(this.c_fc.forward(x)); // [B, T, inner]
    return this.dropout.forward(this.c_proj.forward(h)); // [B, T, H]
  }
}

/** Pre-LayerNorm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`. */
export class GPT2Block extends Module {
  declare ln_1: TensorLayer;
  declare attn: GPT2Attention;
  declare ln_2: TensorLayer;
  declare mlp: GPT2MLP;

  constructor(dims: GPT2Dims) {
    super();
    this.registerModule('ln_1', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('attn', new GPT2Attention(dims));
    this.registerModule('ln_2', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('mlp', new GPT2MLP(dims));
  }

  forward(
    x: Tensor,
    mask: Tensor | null,
    pastK?: Tensor,
    pastV?: Tensor,
  ): { h: Tensor; k: Tensor; v: Tensor } {
    const a = this.attn.forward(this.ln_1.forward(x), mask, pastK, pastV); // out [B, T, H]
    const h = tf.add(x, a.out); // [B, T, H]
    return { h: tf.add(h, this.mlp.forward(this.ln_2.forward(h))), k: a.k, v: a.v }; // [B, T, H]
  }
}

/** The GPT-2 trunk (`transformer`): embeddings, blocks, final LayerNorm. Call inside a tidy. */
export class GPT2Model extends Module {
  declare wte: TensorLayer;
  declare wpe: TensorLayer;
  declare drop: Dropout;
  declare h: ModuleList<GPT2Block>;
  declare ln_f: TensorLayer;

  constructor(readonly dims: GPT2Dims) {
    super();
    this.registerModule('wte', new Embedding(dims.vocabSize, dims.hidden));
    this.registerModule('wpe', new Embedding(dims.maxPositions, dims.hidden));
    this.registerModule('drop', new Dropout(dims.embdDropout));
    this.registerModule('h', new ModuleList(Array.from({ length: dims.nLayers }, () => new GPT2Block(dims))));
    this.registerModule('ln_f', new LayerNorm(dims.hidden, dims.eps));
  }

  forward(inputs: ModelInputs, where: string): DecoderOutput {
    const [b, t] = batchShape(inputs, where);
    const past = inputs.pastKeyValues;
    checkCache(past, this.dims.nLayers, b, where);
    const start = pastLength(past);
    const starts = rowStarts(inputs, b, where) ? inputs.positionOffsets! : [start];
    if (Math.max(...starts) + t > this.dims.maxPositions) {
      throw new ShapeError(
        where,
        `positions up to ${Math.max(...starts) + t} exceed n_positions`,
        this.dims.maxPositions,
        'shorten the input',
      );
    }
    const mask = additivePaddingMask(inputs, start, where); // [B, 1, 1, past + T] or null
    const positions = inputs.positionOffsets
      ? tf.tensor2d(
          starts.flatMap((s) => Array.from({ length: t }, (_, i) => s + i)),
          [b, t],
          'int32',
        ) // int32 [B, T]: each row from its own position (ragged caches)
      : tf.range(start, start + t, 1, 'int32').reshape([1, t]); // int32 [1, T]
    const tok = this.wte.forward(inputs.inputIds); // [B, T, H]
    let x = this.drop.forward(tf.add(tok, this.wpe.forward(positions))); // [B, T, H]
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    this.h.namedChildren().forEach(([, block], i) => {
      const out = (block as GPT2Block).forward(x, mask, past?.keys[i], past?.values[i]); // h [B, T, H]
      x = out.h;
      keys.push(out.k);
      values.push(out.v);
    });
    const hidden = this.ln_f.forward(x); // [B, T, H]
    return inputs.useCache ? { hidden, cache: { keys, values } } : { hidden };
  }
}

/**
 * `GPT2LMHeadModel`: logits over the vocabulary [B, T, V]; labels [B, T] give the shifted LM loss.
 *
 * @example
 * const gpt = new GPT2LMHeadModel({ model_type: 'gpt2', vocab_size: 64, n_embd: 32, n_layer: 2, n_head: 4 });
 * const out = gpt.forward({ inputIds, useCache: true }); // out.logits [B, T, 64], out.pastKeyValues
 */
export class GPT2LMHeadModel extends DecoderForCausalLM {
  declare transformer: GPT2Model;
  readonly modelType = 'gpt2' as const;
  readonly architecture = 'GPT2LMHeadModel';

  constructor(config: HFConfig) {
    const dims = gpt2Dims(config);
    super(config, 'transformer', new GPT2Model(dims), {
      embeddingName: 'wte',
      hidden: dims.hidden,
      vocabSize: dims.vocabSize,
      tieWordEmbeddings: new ConfigReader(config, 'GPT2Config').bool('tie_word_embeddings', true), // HF default: tied
    });
  }
}

/** `GPT2ForSequenceClassification`: `score` on the last non-pad token (decoder_heads.ts). */
export class GPT2ForSequenceClassification extends DecoderForSequenceClassification {
  declare transformer: GPT2Model;
  readonly modelType = 'gpt2' as const;
  readonly architecture = 'GPT2ForSequenceClassification';

  constructor(config: HFConfig) {
    const dims = gpt2Dims(config);
    super(config, 'transformer', new GPT2Model(dims), dims.hidden, 'GPT2Config');
  }
}
