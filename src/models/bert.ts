/**
 * BERT and RoBERTa encoders with Hugging Face module paths (`embeddings.word_embeddings`,
 * `encoder.layer.{i}.attention.self.query`, …), so a checkpoint loads as a key copy.
 * RoBERTa is BERT with position ids offset by `padding_idx + 1` (HF `create_position_ids_from_input_ids`)
 * and its own classification head (bert_classification.ts).
 *
 * Dropout: hidden-state dropouts are applied in training as in HF; dropout on the attention
 * probabilities (`attention_probs_dropout_prob`) is not, because the shared `attention` op has no
 * dropout input. Eval outputs are unaffected.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { activation, dropoutAddLayerNorm, multiHeadAttention } from '../tensor/ops/index.js';
import { Module, ModuleList, type TensorLayer } from '../nn/module.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { ShapeError } from '../errors.js';
import { PreTrainedModel, type HFConfig, type ModelInputs, type ModelOutput } from './base.js';
import { ConfigReader } from './config.js';
import { additivePaddingMask, batchShape, tidyOutput } from './common.js';

/** The dimensions of a BERT/RoBERTa config, read once. */
export interface BertDims {
  roberta: boolean;
  vocabSize: number;
  hidden: number;
  nLayers: number;
  nHead: number;
  headDim: number;
  intermediate: number;
  maxPositions: number;
  typeVocab: number;
  eps: number;
  act: string;
  hiddenDropout: number;
  padTokenId: number;
}

/** Reads and validates a `bert` / `roberta` config. */
export function bertDims(config: HFConfig): BertDims {
  const roberta = config.model_type === 'roberta';
  const r = new ConfigReader(config, roberta ? 'RobertaConfig' : 'BertConfig');
  const hidden = r.int('hidden_size', 768);
  const nHead = r.int('num_attention_heads', 12);
  if (hidden % nHead !== 0) {
    throw new ShapeError(
      'BertConfig.hidden_size',
      `must be divisible by num_attention_heads (${nHead})`,
      hidden,
      'fix config.json',
    );
  }
  if (config.is_decoder === true)
    r.rejectIfSet('is_decoder', 'use BERT as an encoder, or GPT-2/Llama as a decoder');
  if (config.add_cross_attention === true) r.rejectIfSet('add_cross_attention', 'set it to false');
  const posType = config.position_embedding_type;
  if (posType !== undefined && posType !== null && posType !== 'absolute') {
    r.rejectIfSet('position_embedding_type', 'use absolute position embeddings');
  }
  return {
    roberta,
    vocabSize: r.int('vocab_size', 30522),
    hidden,
    nLayers: r.int('num_hidden_layers', 12),
    nHead,
    headDim: hidden / nHead,
    intermediate: r.int('intermediate_size', 3072),
    maxPositions: r.int('max_position_embeddings', 512),
    typeVocab: r.int('type_vocab_size', 2),
    eps: r.num('layer_norm_eps', 1e-12),
    act: r.str('hidden_act', 'gelu'),
    hiddenDropout: r.prob('hidden_dropout_prob', 0.1),
    padTokenId: r.optionalTokenId('pad_token_id') ?? (roberta ? 1 : 0),
  };
}

/** word + position + token-type embeddings, then LayerNorm and dropout. */
export class BertEmbeddings extends Module {
  declare word_embeddings: TensorLayer;
  declare position_embeddings: TensorLayer;
  declare token_type_embeddings: TensorLayer;
  declare LayerNorm: TensorLayer;
  declare dropout: Dropout;

  constructor(readonly dims: BertDims) {
    super();
    this.registerModule('word_embeddings', new Embedding(dims.vocabSize, dims.hidden));
    this.registerModule('position_embeddings', new Embedding(dims.maxPositions, dims.hidden));
    this.registerModule('token_type_embeddings', new Embedding(dims.typeVocab, dims.hidden));
    this.registerModule('LayerNorm', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('dropout', new Dropout(dims.hiddenDropout));
  }

  /** int32 [B, T] ids (and segment ids) → [B, T, H]. */
  forward(inputIds: Tensor, tokenTypeIds?: Tensor): Tensor {
    return tf.tidy(() => {
      const [b, t] = inputIds.shape as [number, number];
      const positions = this.positionIds(inputIds); // int32 [B, T]
      const types = tokenTypeIds ?? tf.zeros([b, t], 'int32'); // int32 [B, T]
      const words = this.word_embeddings.forward(inputIds); // [B, T, H]
      const pos = this.position_embeddings.forward(positions); // [B, T, H]
      const seg = this.token_type_embeddings.forward(types); // [B, T, H]
      const x = this.LayerNorm.forward(tf.add(tf.add(words, pos), seg)); // [B, T, H]
      return this.dropout.forward(x); // [B, T, H]
    });
  }

  /** BERT: 0..T-1. RoBERTa: padding_idx + cumulative count of real tokens, padding_idx at pads. */
  private positionIds(inputIds: Tensor): Tensor {
    const [b, t] = inputIds.shape as [number, number];
    const { roberta, padTokenId, maxPositions } = this.dims;
    const last = roberta ? padTokenId + t : t - 1;
    if (last >= maxPositions) {
      throw new ShapeError(
        'BertEmbeddings',
        `sequence needs position ${last}, past max_position_embeddings`,
        maxPositions,
        'truncate the input',
      );
    }
    if (!roberta) return tf.tile(tf.range(0, t, 1, 'int32').reshape([1, t]), [b, 1]); // int32 [B, T]
    const real = tf.notEqual(inputIds, padTokenId).toFloat(); // [B, T]
    return tf.add(tf.mul(tf.cumsum(real, 1), real), padTokenId).toInt(); // int32 [B, T]
  }
}

/** Multi-head self-attention projections (`query`, `key`, `value`). */
export class BertSelfAttention extends Module {
  declare query: TensorLayer;
  declare key: TensorLayer;
  declare value: TensorLayer;

  constructor(readonly dims: BertDims) {
    super();
    this.registerModule('query', new Linear(dims.hidden, dims.hidden));
    this.registerModule('key', new Linear(dims.hidden, dims.hidden));
    this.registerModule('value', new Linear(dims.hidden, dims.hidden));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tf.tidy(() => {
      const q = this.query.forward(x); // [B, T, H]
      const k = this.key.forward(x); // [B, T, H]
      const v = this.value.forward(x); // [B, T, H]
      // split into nHead heads of headDim, attend, merge: one fused kernel on native (no transposes)
      return multiHeadAttention(q, k, v, this.dims.nHead, { mask }); // [B, T, H]
    });
  }
}

/** `dense`, dropout, then `LayerNorm(x + residual)` (HF BertSelfOutput / BertOutput). */
export class BertResidualOutput extends Module {
  declare dense: TensorLayer;
  declare LayerNorm: TensorLayer;
  declare dropout: Dropout;

  constructor(inFeatures: number, dims: BertDims) {
    super();
    this.registerModule('dense', new Linear(inFeatures, dims.hidden));
    this.registerModule('LayerNorm', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('dropout', new Dropout(dims.hiddenDropout));
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return tf.tidy(() => {
      const h = this.dense.forward(x); // [B, T, H]
      const ln = this.LayerNorm;
      // dropout, residual add and LayerNorm in one kernel each way on native (same bits, same seed)
      if (ln instanceof LayerNorm)
        return dropoutAddLayerNorm(h, residual, ln.weight, ln.bias ?? null, ln.eps, this.dropout.draw()); // [B, T, H]
      return ln.forward(tf.add(this.dropout.forward(h), residual)); // [B, T, H]
    });
  }
}

export class BertAttention extends Module {
  declare self: BertSelfAttention;
  declare output: BertResidualOutput;

  constructor(dims: BertDims) {
    super();
    this.registerModule('self', new BertSelfAttention(dims));
    this.registerModule('output', new BertResidualOutput(dims.hidden, dims));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tf.tidy(() => this.output.forward(this.self.forward(x, mask), x)); // [B, T, H]
  }
}

export class BertIntermediate extends Module {
  declare dense: TensorLayer;

  constructor(readonly dims: BertDims) {
    super();
    this.registerModule('dense', new Linear(dims.hidden, dims.intermediate));
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => activation(this.dims.act)(this.dense.forward(x))); // [B, T, intermediate]
  }
}

/** One encoder block: attention, then the feed-forward network, each with a post-LayerNorm residual. */
export class BertLayer extends Module {
  declare attention: BertAttention;
  declare intermediate: BertIntermediate;
  declare output: BertResidualOutput;

  constructor(dims: BertDims) {
    super();
    this.registerModule('attention', new BertAttention(dims));
    this.registerModule('intermediate', new BertIntermediate(dims));
    this.registerModule('output', new BertResidualOutput(dims.intermediate, dims));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tf.tidy(() => {
      const a = this.attention.forward(x, mask); // [B, T, H]
      const m = this.intermediate.forward(a); // [B, T, intermediate]
      return this.output.forward(m, a); // [B, T, H]
    });
  }
}

export class BertEncoder extends Module {
  declare layer: ModuleList<BertLayer>;

  constructor(dims: BertDims) {
    super();
    this.registerModule(
      'layer',
      new ModuleList(Array.from({ length: dims.nLayers }, () => new BertLayer(dims))),
    );
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tf.tidy(() => {
      let h = x; // [B, T, H]
      for (const block of this.layer) h = block.forward(h, mask); // [B, T, H]
      return h;
    });
  }
}

/** `tanh(dense(h[:, 0]))`: the [CLS] summary used by BERT's classifier. */
export class BertPooler extends Module {
  declare dense: TensorLayer;

  constructor(dims: BertDims) {
    super();
    this.registerModule('dense', new Linear(dims.hidden, dims.hidden));
  }

  forward(hidden: Tensor): Tensor {
    return tf.tidy(() => {
      const [b, , h] = hidden.shape as number[];
      const first = hidden.slice([0, 0, 0], [b!, 1, h!]).reshape([b!, h!]); // [B, H]
      return tf.tanh(this.dense.forward(first)); // [B, H]
    });
  }
}

export interface BertModelOptions {
  /** HF `add_pooling_layer` (RoBERTa's classifier builds the model without it). */
  addPoolingLayer?: boolean;
}

/**
 * The bare encoder (`BertModel` / `RobertaModel`). `forward` returns the last hidden state as `logits`
 * ([B, T, H]); {@link BertModel.encode} also gives the pooled output.
 *
 * @example
 * const bert = new BertModel({ model_type: 'bert', vocab_size: 100, hidden_size: 32, num_hidden_layers: 2,
 *   num_attention_heads: 4, intermediate_size: 64 });
 * const { logits } = bert.forward({ inputIds: tf.tensor2d([[2, 7, 3]], undefined, 'int32') }); // [1, 3, 32]
 */
export class BertModel extends PreTrainedModel {
  declare embeddings: BertEmbeddings;
  declare encoder: BertEncoder;
  declare pooler: BertPooler | undefined;
  readonly modelType: 'bert' | 'roberta';
  readonly taskType = 'FEATURE_EXTRACTION' as const;
  readonly architecture: string;
  readonly dims: BertDims;

  constructor(
    readonly config: HFConfig,
    opts: BertModelOptions = {},
  ) {
    super();
    this.dims = bertDims(config);
    this.modelType = this.dims.roberta ? 'roberta' : 'bert';
    this.architecture = this.dims.roberta ? 'RobertaModel' : 'BertModel';
    this.registerModule('embeddings', new BertEmbeddings(this.dims));
    this.registerModule('encoder', new BertEncoder(this.dims));
    if (opts.addPoolingLayer ?? true) this.registerModule('pooler', new BertPooler(this.dims));
  }

  /** Last hidden state [B, T, H] and, with a pooler, the pooled [CLS] output [B, H]. Caller disposes. */
  encode(inputs: ModelInputs): { lastHiddenState: Tensor; pooled?: Tensor } {
    const where = this.architecture;
    batchShape(inputs, where);
    const out = tf.tidy(() => {
      const mask = additivePaddingMask(inputs, 0, where); // [B, 1, 1, T] or null
      const x = this.embeddings.forward(inputs.inputIds, inputs.tokenTypeIds); // [B, T, H]
      const lastHiddenState = this.encoder.forward(x, mask); // [B, T, H]
      const pooled = this.pooler?.forward(lastHiddenState); // [B, H]
      return pooled ? { lastHiddenState, pooled } : { lastHiddenState };
    });
    return out as { lastHiddenState: Tensor; pooled?: Tensor };
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => ({ logits: this.encode(inputs).lastHiddenState }));
  }

  outputModuleNames(): string[] {
    return [];
  }
}
