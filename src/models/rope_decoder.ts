/**
 * The pieces the Llama family shares beyond Llama itself (Qwen2, Mistral, Gemma, Gemma 2, Phi-3):
 * RoPE decoder dimensions read from config.json, grouped-query attention with optional q/k/v biases,
 * sliding windows and score soft-capping, the gated MLP, Gemma's offset RMSNorm and the trunk
 * (`model.embed_tokens`, `model.layers.{i}`, `model.norm`) that builds the per-layer masks.
 * Module paths are the Hugging Face checkpoint keys, so loading is a key copy.
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { MASK_VALUE, attention, causalMask, rmsNorm } from '../tensor/ops/index.js';
import { Module, ModuleList, type TensorLayer } from '../nn/module.js';
import { Embedding, RMSNorm } from '../nn/layers.js';
import { checkpointActive, checkpointBlock, type BlockFn } from '../nn/checkpoint.js';
import { ConfigError, NotSupportedError, ShapeError } from '../errors.js';
import type { HFConfig, ModelInputs } from './base.js';
import { ConfigReader } from './config.js';
import { additivePaddingMask, batchShape, checkCache, pastLength, repeatKv } from './common.js';
import type { DecoderOutput } from './decoder_heads.js';
import { ropeTables } from './rope.js';
import { LlamaAttention, LlamaMLP, type AttentionContext, type LlamaDims } from './llama.js';

/**
 * Everything a RoPE decoder layer stack needs, resolved from config.json once: Llama's dims with the
 * attention biases set apart, plus the family's options.
 */
export interface RopeDecoderDims extends Omit<LlamaDims, 'attentionBias'> {
  /** Biases on q_proj, k_proj, v_proj (Qwen2: true). */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  /** Sliding window per layer (query i sees keys j with i − w < j ≤ i), or null for global attention. */
  windows: (number | null)[];
  /** Multiplies the embedding output (Gemma: √hidden in float32), or null. */
  embedScale: number | null;
  /** RMSNorm multiplies by (1 + w) with w stored as an offset near 0 (Gemma). */
  normOffset: boolean;
  /** Attention score scale (1/√headDim, Gemma 2: query_pre_attn_scalar^−½). */
  scoreScale: number;
  /** Gemma 2: scores become cap·tanh(s/cap) after scaling, before the mask. */
  attnSoftcap: number | null;
  /** Gemma 2: logits become cap·tanh(logits/cap). */
  finalSoftcap: number | null;
}

/** HF config-class defaults of the fields {@link readRopeDims} reads (each class has its own). */
export interface RopeDefaults {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  nLayers: number;
  nHead: number;
  /** Absent = num_attention_heads. */
  nKvHead?: number;
  /** Absent = hidden / heads. */
  headDim?: number;
  eps: number;
  act: string;
  tieWordEmbeddings: boolean;
  /** Config key holding the MLP activation (`hidden_act`; Gemma: `hidden_activation`). */
  actKey?: string;
}

/**
 * The common part of a RoPE decoder config, with plain defaults for the optional features (no
 * biases, no window, no soft-capping); architecture readers override those. Rejects `rope_scaling`.
 *
 * @example const dims = readRopeDims(new ConfigReader(cfg, 'Qwen2Config'), QWEN2_DEFAULTS);
 */
export function readRopeDims(r: ConfigReader, d: RopeDefaults): RopeDecoderDims {
  const hidden = r.int('hidden_size', d.hidden);
  const nHead = r.int('num_attention_heads', d.nHead);
  const nKvHead = r.int('num_key_value_heads', d.nKvHead ?? nHead);
  const headDim = r.int('head_dim', d.headDim ?? Math.floor(hidden / nHead));
  if (nHead % nKvHead !== 0) {
    throw new ShapeError(
      `${r.where}.num_key_value_heads`,
      `must divide num_attention_heads (${nHead})`,
      nKvHead,
      'fix config.json',
    );
  }
  if (headDim % 2 !== 0)
    throw new ShapeError(`${r.where}.head_dim`, 'must be even for RoPE', headDim, 'fix config.json');
  r.rejectIfSet('rope_scaling', 'remove rope_scaling (only plain RoPE with rope_theta is implemented)');
  const nLayers = r.int('num_hidden_layers', d.nLayers);
  return {
    vocabSize: r.int('vocab_size', d.vocabSize),
    hidden,
    intermediate: r.int('intermediate_size', d.intermediate),
    nLayers,
    nHead,
    nKvHead,
    headDim,
    eps: r.num('rms_norm_eps', d.eps),
    ropeTheta: r.num('rope_theta', 10000),
    act: r.str(d.actKey ?? 'hidden_act', d.act),
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: r.bool('tie_word_embeddings', d.tieWordEmbeddings),
    windows: new Array<number | null>(nLayers).fill(null),
    embedScale: null,
    normOffset: false,
    scoreScale: 1 / Math.sqrt(headDim),
    attnSoftcap: null,
    finalSoftcap: null,
  };
}

/**
 * `sliding_window` as HF reads it: absent = the class default, null = no window, else a positive
 * integer.
 * @example slidingWindowOf({ sliding_window: null }, 'MistralConfig', 4096) // null
 */
export function slidingWindowOf(config: HFConfig, where: string, fallback: number | null): number | null {
  const v = config.sliding_window;
  if (v === undefined) return fallback;
  if (v === null) return null;
  return new ConfigReader(config, where).int('sliding_window');
}

/** An optional positive number (soft-capping values): null/absent = off. */
export function optionalPositive(config: HFConfig, key: string, where: string, fallback: number | null) {
  const v = config[key];
  if (v === null) return null;
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) {
    throw new ConfigError(`${where}.${key}`, 'must be a positive number or null', v, 'fix config.json');
  }
  return v;
}

/**
 * Gemma's RMSNorm: `x̂ · (1 + w)` with `w` initialised to 0 (HF `GemmaRMSNorm`); the stored weight is
 * the offset, so a plain RMSNorm would read it wrong.
 */
export class OffsetRMSNorm extends Module {
  declare weight: Variable;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.registerInitialised('weight', tf.zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => rmsNorm(x, tf.add(this.weight, 1), this.eps)); // [..., dim]
  }
}

/** The norm a config calls for: Gemma's (1 + w) or the plain RMSNorm. */
export function makeNorm(dims: RopeDecoderDims): TensorLayer {
  return dims.normOffset ? new OffsetRMSNorm(dims.hidden, dims.eps) : new RMSNorm(dims.hidden, dims.eps);
}

/** What every layer of the stack receives: rotary tables and its mask (padding + its sliding window). */
export type LayerContext = AttentionContext;

/** A decoder layer: `h` [B, T, H] and its keys/values [B, nKv, past + T, d] including cached ones. */
export interface RopeLayer extends Module {
  forward(x: Tensor, ctx: LayerContext, pastK?: Tensor, pastV?: Tensor): { h: Tensor; k: Tensor; v: Tensor };
}

/**
 * [1, 1, Tq, Tk] additive mask hiding keys at or before `query position − window` (queries sit at the
 * end of the keys, as with a KV cache). The causal part is applied by the attention itself.
 * @example slidingWindowMask(16, 16, 8) // query 10 sees keys 3 … 10
 */
export function slidingWindowMask(tq: number, tk: number, window: number): Tensor {
  const data = new Float32Array(tq * tk);
  for (let i = 0; i < tq; i++) {
    const last = tk - tq + i - window; // the newest key this query no longer sees
    for (let j = 0; j <= last; j++) data[i * tk + j] = MASK_VALUE;
  }
  return tf.tensor4d(data, [1, 1, tq, tk]);
}

/**
 * GQA attention over already rotated q [B, nHead, Tq, d] and k, v [B, nKv, Tk, d], causal, with the
 * given score scale, optional soft-capping (`cap·tanh(s/cap)` before the mask, Gemma 2) and additive
 * mask. Without soft-capping this is the shared `attention` op (fused on native).
 */
export function ropeAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  dims: Pick<RopeDecoderDims, 'nHead' | 'nKvHead' | 'scoreScale' | 'attnSoftcap'>,
): Tensor {
  const nRep = dims.nHead / dims.nKvHead;
  const kr = repeatKv(k, nRep); // [B, nHead, Tk, d]
  const vr = repeatKv(v, nRep); // [B, nHead, Tk, d]
  const cap = dims.attnSoftcap;
  if (cap === null) return attention(q, kr, vr, { mask, causal: true, scale: dims.scoreScale });
  const [, , tq] = q.shape as number[];
  const tk = k.shape[2]!;
  let scores = tf.mul(tf.matMul(q, kr, false, true), dims.scoreScale); // [B, nHead, Tq, Tk]
  scores = tf.mul(tf.tanh(tf.div(scores, cap)), cap);
  scores = tf.add(scores, causalMask(tq!, tk));
  if (mask) scores = tf.add(scores, mask);
  return tf.matMul(tf.softmax(scores, -1), vr); // [B, nHead, Tq, d]
}

/**
 * Llama's rotary attention with the family's options: q/k/v and o biases set apart (Qwen2 biases only
 * q/k/v), the score scale and Gemma 2's soft-capping ({@link ropeAttention}).
 */
export class RopeAttention extends LlamaAttention {
  private readonly family: RopeDecoderDims;

  constructor(dims: RopeDecoderDims) {
    super({ ...dims, attentionBias: dims.qkvBias, oBias: dims.oBias });
    this.family = dims;
  }

  protected override attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null): Tensor {
    return ropeAttention(q, k, v, mask, this.family); // [B, nHead, T, d]
  }
}

/** The gated MLP of the family is Llama's (`down(act(gate(x)) · up(x))`), with the config's activation. */
export { LlamaMLP as GatedMLP };

/** Pre-norm block `x + attn(norm(x))`, `x + mlp(norm(x))` (Qwen2, Mistral, Gemma). */
export class RopeDecoderLayer extends Module implements RopeLayer {
  declare input_layernorm: TensorLayer;
  declare self_attn: RopeAttention;
  declare post_attention_layernorm: TensorLayer;
  declare mlp: LlamaMLP;

  constructor(dims: RopeDecoderDims) {
    super();
    this.registerModule('input_layernorm', makeNorm(dims));
    this.registerModule('self_attn', new RopeAttention(dims));
    this.registerModule('post_attention_layernorm', makeNorm(dims));
    this.registerModule('mlp', new LlamaMLP(dims));
  }

  forward(x: Tensor, ctx: LayerContext, pastK?: Tensor, pastV?: Tensor) {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), ctx, pastK, pastV); // out [B, T, H]
    const h = tf.add(x, a.out); // [B, T, H]
    return { h: tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))), k: a.k, v: a.v };
  }
}

/**
 * The trunk (`model`): embeddings (× `embedScale`), the layers, the final norm. Builds the padding mask
 * once and adds each distinct sliding window to it. Call inside a tidy.
 */
export class RopeDecoderModel extends Module {
  declare embed_tokens: TensorLayer;
  declare layers: ModuleList<RopeLayer>;
  declare norm: TensorLayer;

  constructor(
    readonly dims: RopeDecoderDims,
    makeLayer: (i: number) => RopeLayer,
  ) {
    super();
    this.registerModule('embed_tokens', new Embedding(dims.vocabSize, dims.hidden));
    this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: dims.nLayers }, (_, i) => makeLayer(i))),
    );
    this.registerModule('norm', makeNorm(dims));
  }

  forward(inputs: ModelInputs, where: string): DecoderOutput {
    const [b, t] = batchShape(inputs, where);
    const past = inputs.pastKeyValues;
    checkCache(past, this.dims.nLayers, b, where);
    const start = pastLength(past);
    const padding = additivePaddingMask(inputs, start, where); // [B, 1, 1, past + T] or null
    const masks = new Map<number | null, Tensor | null>([[null, padding]]);
    for (const w of this.dims.windows) {
      if (w === null || masks.has(w) || start + t <= w) continue; // a window wider than the keys is a no-op
      const win = slidingWindowMask(t, start + t, w); // [1, 1, T, past + T]
      masks.set(w, padding ? tf.add(padding, win) : win); // [B or 1, 1, T, past + T]
    }
    const rope = ropeTables(start, t, this.dims.headDim, this.dims.ropeTheta); // cos, sin [1, 1, T, d]
    let x = this.embed_tokens.forward(inputs.inputIds); // [B, T, H]
    if (this.dims.embedScale !== null) x = tf.mul(x, this.dims.embedScale);
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    this.layers.namedChildren().forEach(([, layer], i) => {
      const w = this.dims.windows[i] ?? null;
      const mask = masks.get(w) ?? padding;
      if (checkpointActive(this, inputs)) {
        const run: BlockFn = (xi, [c, s, m]) =>
          (layer as RopeLayer).forward(xi, { rope: { cos: c!, sin: s! }, mask: m }).h;
        return void (x = checkpointBlock(layer, x, [rope.cos, rope.sin, mask], run)); // [B, T, H]
      }
      // one tidy per layer: a forward without gradients frees each layer's intermediates as it goes
      const out = tf.tidy(() =>
        (layer as RopeLayer).forward(x, { rope, mask }, past?.keys[i], past?.values[i]),
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
 * Attention/residual dropout is not implemented in these decoders: a nonzero rate is refused by name
 * instead of silently ignored (every released checkpoint of these families ships 0).
 * @example refuseDropout(new ConfigReader(cfg, 'MistralConfig'), 'attention_dropout');
 */
export function refuseDropout(r: ConfigReader, key: string): void {
  const p = r.prob(key, 0);
  if (p !== 0) {
    throw new NotSupportedError(`${r.where}.${key}`, `"${key}" = ${p}`, `set ${key} to 0.0`);
  }
}
