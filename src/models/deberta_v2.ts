/**
 * DeBERTa-v2 / DeBERTa-v3 for sequence classification with Hugging Face module paths
 * (`deberta.embeddings`, `deberta.encoder.layer.{i}.attention.self.query_proj`, `deberta.encoder.
 * rel_embeddings`, `pooler.dense`, `classifier`). Disentangled attention (He et al. 2021, §3.1):
 *
 *   score[i, j] = (Q_i·K_j + Q_i·PK[δ(i, j)] + K_j·PQ[δ(i, j)]) / √(d·(1 + c2p + p2c))
 *
 * with PQ, PK the relative-position table R projected by the same query/key Linear modules
 * (`share_att_key`, so adapters on them apply to the positions too), and δ(i, j) the log-bucketed
 * relative position `bucket(i − j) + span` (§3.2 of the DeBERTaV3 release: `position_buckets`).
 * Post-LN blocks, exact-erf GELU, mask on queries and keys, pooler = act(dense(h[:, 0])).
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { MASK_VALUE, activation } from '../tensor/ops/index.js';
import { Module, ModuleList, type TensorLayer } from '../nn/module.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { ShapeError } from '../errors.js';
import { PreTrainedModel, type HFConfig, type ModelInputs, type ModelOutput } from './base.js';
import { numLabelsOf, problemTypeOf } from './config.js';
import { debertaV2Dims, relativeIndex, type DebertaV2Dims } from './deberta_v2_config.js';
import { batchShape, classificationLoss, mergeHeads, splitHeads, tidyOutput } from './common.js';

export * from './deberta_v2_config.js';

/** out[b, h, i, j] = x[b, h, i, idx[i, j]]: x [B, H, T, S], idx int32 [T, T] → [B, H, T, T]. */
function gatherRelative(x: Tensor, idx: Tensor): Tensor {
  const [b, h, t, s] = x.shape as number[];
  const rows = b! * h! * t!;
  const base = tf.range(0, rows * s!, s!, 'int32').reshape([rows, 1]); // [BHT, 1] row starts
  const offsets = tf.tile(idx.reshape([1, t!, t!]), [b! * h!, 1, 1]).reshape([rows, t!]); // [BHT, T]
  return tf.gather(x.reshape([-1]), tf.add(base, offsets).reshape([-1])).reshape([b!, h!, t!, t!]);
}

/** word (+ position, + token type) embeddings, optional `embed_proj`, LayerNorm, × mask, dropout. */
export class DebertaV2Embeddings extends Module {
  declare word_embeddings: TensorLayer;
  declare position_embeddings: TensorLayer | undefined;
  declare token_type_embeddings: TensorLayer | undefined;
  declare embed_proj: TensorLayer | undefined;
  declare LayerNorm: TensorLayer;
  declare dropout: Dropout;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    const e = dims.embeddingSize;
    this.registerModule('word_embeddings', new Embedding(dims.vocabSize, e));
    if (dims.positionBiasedInput)
      this.registerModule('position_embeddings', new Embedding(dims.maxPositions, e));
    if (dims.typeVocab > 0) this.registerModule('token_type_embeddings', new Embedding(dims.typeVocab, e));
    if (e !== dims.hidden) this.registerModule('embed_proj', new Linear(e, dims.hidden, { bias: false }));
    this.registerModule('LayerNorm', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('dropout', new Dropout(dims.hiddenDropout));
  }

  /** int32 ids [B, T], float mask [B, T] → [B, T, H] with pad rows zeroed. */
  forward(inputIds: Tensor, mask: Tensor, tokenTypeIds?: Tensor): Tensor {
    const [b, t] = inputIds.shape as [number, number];
    let x = this.word_embeddings.forward(inputIds); // [B, T, E]
    if (this.position_embeddings) {
      if (t > this.dims.maxPositions) {
        throw new ShapeError(
          'DebertaV2Embeddings',
          'sequence is longer than max_position_embeddings',
          t,
          'truncate the input',
        );
      }
      x = tf.add(x, this.position_embeddings.forward(tf.range(0, t, 1, 'int32').reshape([1, t]))); // [B, T, E]
    }
    if (this.token_type_embeddings)
      x = tf.add(x, this.token_type_embeddings.forward(tokenTypeIds ?? tf.zeros([b, t], 'int32')));
    if (this.embed_proj) x = this.embed_proj.forward(x); // [B, T, H]
    x = tf.mul(this.LayerNorm.forward(x), mask.reshape([b, t, 1])); // [B, T, H]
    return this.dropout.forward(x);
  }
}

/** Disentangled self-attention (`query_proj`, `key_proj`, `value_proj`, + `pos_*_proj` unshared). */
export class DisentangledSelfAttention extends Module {
  declare query_proj: TensorLayer;
  declare key_proj: TensorLayer;
  declare value_proj: TensorLayer;
  declare pos_key_proj: TensorLayer | undefined;
  declare pos_query_proj: TensorLayer | undefined;
  declare dropout: Dropout;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    const { hidden } = dims;
    this.registerModule('query_proj', new Linear(hidden, hidden));
    this.registerModule('key_proj', new Linear(hidden, hidden));
    this.registerModule('value_proj', new Linear(hidden, hidden));
    if (!dims.shareAttKey) {
      if (dims.c2p) this.registerModule('pos_key_proj', new Linear(hidden, hidden));
      if (dims.p2c) this.registerModule('pos_query_proj', new Linear(hidden, hidden));
    }
    this.registerModule('dropout', new Dropout(dims.attentionDropout));
  }

  /** x [B, T, H], additive mask [B, 1, T, T], R [2·span, H], idx int32 [T, T] → [B, T, H]. */
  forward(x: Tensor, mask: Tensor, rel: Tensor, idx: Tensor): Tensor {
    const { nHead, headDim, c2p, p2c, shareAttKey } = this.dims;
    const heads = (y: Tensor) => splitHeads(y, nHead, headDim); // [B, nHead, T, d]
    const q = heads(this.query_proj.forward(x));
    const k = heads(this.key_proj.forward(x));
    const v = heads(this.value_proj.forward(x));
    const scale = 1 / Math.sqrt(headDim * (1 + Number(c2p) + Number(p2c)));
    let scores = tf.matMul(q, k, false, true); // [B, nHead, T, T]
    const r3 = rel.reshape([1, ...rel.shape]); // [1, 2S, H]
    if (c2p) {
      const pk = heads((shareAttKey ? this.key_proj : this.pos_key_proj!).forward(r3)); // [1, nHead, 2S, d]
      const all = tf.matMul(q, tf.tile(pk, [q.shape[0]!, 1, 1, 1]), false, true); // [B, nHead, T, 2S]
      scores = tf.add(scores, gatherRelative(all, idx)); // + Q_i·PK[δ(i, j)]
    }
    if (p2c) {
      const pq = heads((shareAttKey ? this.query_proj : this.pos_query_proj!).forward(r3)); // [1, nHead, 2S, d]
      const all = tf.matMul(k, tf.tile(pq, [k.shape[0]!, 1, 1, 1]), false, true); // [B, nHead, T(j), 2S]
      // K_j·PQ[δ(i, j)]: gather row j at δ(i, j) (= the transposed index), then swap i and j
      scores = tf.add(scores, gatherRelative(all, idx.transpose()).transpose([0, 1, 3, 2]));
    }
    const probs = this.dropout.forward(tf.softmax(tf.add(tf.mul(scores, scale), mask), -1)); // [B, nHead, T, T]
    return mergeHeads(tf.matMul(probs, v)); // [B, T, H]
  }
}

/** `dense`, dropout, then `LayerNorm(x + residual)` (HF DebertaV2SelfOutput / DebertaV2Output). */
export class DebertaV2ResidualOutput extends Module {
  declare dense: TensorLayer;
  declare LayerNorm: TensorLayer;
  declare dropout: Dropout;

  constructor(inFeatures: number, dims: DebertaV2Dims) {
    super();
    this.registerModule('dense', new Linear(inFeatures, dims.hidden));
    this.registerModule('LayerNorm', new LayerNorm(dims.hidden, dims.eps));
    this.registerModule('dropout', new Dropout(dims.hiddenDropout));
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(tf.add(this.dropout.forward(this.dense.forward(x)), residual)); // [B, T, H]
  }
}

export class DebertaV2Attention extends Module {
  declare self: DisentangledSelfAttention;
  declare output: DebertaV2ResidualOutput;

  constructor(dims: DebertaV2Dims) {
    super();
    this.registerModule('self', new DisentangledSelfAttention(dims));
    this.registerModule('output', new DebertaV2ResidualOutput(dims.hidden, dims));
  }

  forward(x: Tensor, mask: Tensor, rel: Tensor, idx: Tensor): Tensor {
    return this.output.forward(this.self.forward(x, mask, rel, idx), x); // [B, T, H]
  }
}

export class DebertaV2Intermediate extends Module {
  declare dense: TensorLayer;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    activation(dims.act); // fails at construction for an unknown activation
    this.registerModule('dense', new Linear(dims.hidden, dims.intermediate));
  }

  forward(x: Tensor): Tensor {
    return activation(this.dims.act)(this.dense.forward(x)); // [B, T, I]
  }
}

/** One post-LN block: disentangled attention, then the feed-forward network. */
export class DebertaV2Layer extends Module {
  declare attention: DebertaV2Attention;
  declare intermediate: DebertaV2Intermediate;
  declare output: DebertaV2ResidualOutput;

  constructor(dims: DebertaV2Dims) {
    super();
    this.registerModule('attention', new DebertaV2Attention(dims));
    this.registerModule('intermediate', new DebertaV2Intermediate(dims));
    this.registerModule('output', new DebertaV2ResidualOutput(dims.intermediate, dims));
  }

  forward(x: Tensor, mask: Tensor, rel: Tensor, idx: Tensor): Tensor {
    const a = this.attention.forward(x, mask, rel, idx); // [B, T, H]
    return this.output.forward(this.intermediate.forward(a), a); // [B, T, H]
  }
}

/** The layers plus the shared relative-position table `rel_embeddings` and its `LayerNorm`. */
export class DebertaV2Encoder extends Module {
  declare layer: ModuleList<DebertaV2Layer>;
  declare rel_embeddings: TensorLayer & { weight: Tensor };
  declare LayerNorm: TensorLayer | undefined;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    this.registerModule(
      'layer',
      new ModuleList(Array.from({ length: dims.nLayers }, () => new DebertaV2Layer(dims))),
    );
    this.registerModule('rel_embeddings', new Embedding(2 * dims.span, dims.hidden));
    if (dims.normRelEmbedding) this.registerModule('LayerNorm', new LayerNorm(dims.hidden, dims.eps));
  }

  /** x [B, T, H] after the embeddings, mask float [B, T] → last hidden state [B, T, H]. */
  forward(x: Tensor, mask: Tensor): Tensor {
    const [b, t] = mask.shape as [number, number];
    const both = tf.mul(mask.reshape([b, 1, t, 1]), mask.reshape([b, 1, 1, t])); // [B, 1, T, T] query AND key
    const additive = tf.mul(tf.sub(1, both), MASK_VALUE);
    const w = this.rel_embeddings.weight; // [2S, H]
    const rel = this.LayerNorm ? this.LayerNorm.forward(w) : w; // normed once, shared by every layer
    const idx = tf.tensor2d(relativeIndex(t, this.dims), [t, t], 'int32');
    let h = x;
    for (const [, layer] of this.layer.namedChildren())
      h = (layer as DebertaV2Layer).forward(h, additive, rel, idx);
    return h;
  }
}

/** `DebertaV2Model`: embeddings + encoder; `forward` returns the last hidden state as `logits`. */
export class DebertaV2Model extends Module {
  declare embeddings: DebertaV2Embeddings;
  declare encoder: DebertaV2Encoder;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    this.registerModule('embeddings', new DebertaV2Embeddings(dims));
    this.registerModule('encoder', new DebertaV2Encoder(dims));
  }

  /** Runs inside the caller's tidy: last hidden state [B, T, H]. */
  hiddenStates(inputs: ModelInputs, where: string): Tensor {
    const [b, t] = batchShape(inputs, where);
    const m = inputs.attentionMask;
    if (m && (m.rank !== 2 || m.shape[0] !== b || m.shape[1] !== t)) {
      throw new ShapeError(
        `${where}.attentionMask`,
        `must be [${b}, ${t}]`,
        m.shape,
        'pass a 0/1 mask like inputIds',
      );
    }
    const mask = m ? m.toFloat() : tf.ones([b, t]); // [B, T]
    return this.encoder.forward(this.embeddings.forward(inputs.inputIds, mask, inputs.tokenTypeIds), mask);
  }
}

/** HF `ContextPooler`: `act(dense(dropout(h[:, 0])))`. */
export class ContextPooler extends Module {
  declare dense: TensorLayer;
  declare dropout: Dropout;

  constructor(readonly dims: DebertaV2Dims) {
    super();
    activation(dims.poolerAct);
    this.registerModule('dense', new Linear(dims.hidden, dims.poolerHidden));
    this.registerModule('dropout', new Dropout(dims.poolerDropout));
  }

  forward(hidden: Tensor): Tensor {
    const [b, , h] = hidden.shape as number[];
    const first = hidden.slice([0, 0, 0], [b!, 1, h!]).reshape([b!, h!]); // [B, H]
    return activation(this.dims.poolerAct)(this.dense.forward(this.dropout.forward(first))); // [B, P]
  }
}

/**
 * `DebertaV2ForSequenceClassification`: `classifier(dropout(pooler(deberta(x))))`; cross-entropy,
 * or MSE for one label.
 *
 * @example
 * const clf = new DebertaV2ForSequenceClassification({ model_type: 'deberta-v2', vocab_size: 1000,
 *   hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128,
 *   relative_attention: true, position_buckets: 32, pos_att_type: ['p2c', 'c2p'], share_att_key: true,
 *   norm_rel_ebd: 'layer_norm', position_biased_input: false });
 * const { logits } = clf.forward({ inputIds, attentionMask }); // [B, 2]
 */
export class DebertaV2ForSequenceClassification extends PreTrainedModel {
  declare deberta: DebertaV2Model;
  declare pooler: ContextPooler;
  declare dropout: Dropout;
  declare classifier: TensorLayer;
  readonly modelType = 'deberta-v2' as const;
  readonly architecture = 'DebertaV2ForSequenceClassification';
  readonly taskType = 'SEQ_CLS' as const;
  readonly numLabels: number;

  constructor(readonly config: HFConfig) {
    super();
    const dims = debertaV2Dims(config);
    this.numLabels = numLabelsOf(config);
    this.registerModule('deberta', new DebertaV2Model(dims));
    this.registerModule('pooler', new ContextPooler(dims));
    this.registerModule('dropout', new Dropout(dims.clsDropout));
    this.registerModule('classifier', new Linear(dims.poolerHidden, this.numLabels));
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const hidden = this.deberta.hiddenStates(inputs, this.architecture); // [B, T, H]
      const logits = this.classifier.forward(this.dropout.forward(this.pooler.forward(hidden))); // [B, numLabels]
      if (!inputs.labels) return { logits };
      const problem = problemTypeOf(this.config, this.numLabels);
      return { logits, loss: classificationLoss(logits, inputs.labels, problem, this.architecture) };
    });
  }

  outputModuleNames(): string[] {
    return ['classifier'];
  }
}
