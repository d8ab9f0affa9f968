/**
 * DeBERTa-v2/v3 configuration: the dimensions read from config.json (options that are not implemented
 * refused by name) and the relative-position buckets δ(i, j) of the disentangled attention.
 */
import { ConfigError, NotSupportedError, ShapeError } from '../errors.js';
import type { HFConfig } from './base.js';
import { ConfigReader } from './config.js';

/** The dimensions of a `deberta-v2` config, read once. */
export interface DebertaV2Dims {
  vocabSize: number;
  hidden: number;
  embeddingSize: number;
  nLayers: number;
  nHead: number;
  headDim: number;
  intermediate: number;
  maxPositions: number;
  typeVocab: number;
  positionBiasedInput: boolean;
  eps: number;
  act: string;
  hiddenDropout: number;
  attentionDropout: number;
  /** Half the rows of the relative table (`position_buckets`, else max_relative_positions). */
  span: number;
  /** `position_buckets` (≤ 0: no log buckets). */
  buckets: number;
  /** Largest relative distance (`max_relative_positions`, < 1 → max_position_embeddings). */
  maxRelative: number;
  c2p: boolean;
  p2c: boolean;
  shareAttKey: boolean;
  normRelEmbedding: boolean;
  poolerHidden: number;
  poolerAct: string;
  poolerDropout: number;
  clsDropout: number;
}

/** `pos_att_type` as a list (HF also accepts the string form `"p2c|c2p"`). */
function posAttTypes(config: HFConfig): string[] {
  const v = config.pos_att_type;
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? v.toLowerCase().split('|') : Array.isArray(v) ? v : null;
  if (!list || list.some((x) => typeof x !== 'string' || !['c2p', 'p2c'].includes(x.trim()))) {
    throw new ConfigError(
      'DebertaV2Config.pos_att_type',
      'must list "c2p" and/or "p2c"',
      v,
      'use ["p2c", "c2p"] as DeBERTa-v3',
    );
  }
  return (list as string[]).map((x) => x.trim());
}

/** Reads and validates a `deberta-v2` config; refuses the options not implemented, by name. */
export function debertaV2Dims(config: HFConfig): DebertaV2Dims {
  const r = new ConfigReader(config, 'DebertaV2Config');
  const hidden = r.int('hidden_size', 1536);
  const nHead = r.int('num_attention_heads', 24);
  const headDim = r.int('attention_head_size', Math.floor(hidden / nHead));
  if (nHead * headDim !== hidden) {
    throw new ShapeError(
      'DebertaV2Config.hidden_size',
      `must equal num_attention_heads × head size (${nHead} × ${headDim})`,
      hidden,
      'fix config.json',
    );
  }
  if (!r.bool('relative_attention', false)) {
    throw new NotSupportedError(
      'DebertaV2Config.relative_attention',
      '"relative_attention" = false',
      'use a DeBERTa-v2/v3 config with relative_attention true',
    );
  }
  if (typeof config.conv_kernel_size === 'number' && config.conv_kernel_size > 0)
    r.rejectIfSet(
      'conv_kernel_size',
      'remove conv_kernel_size (the v2-xlarge convolution layer is not implemented)',
    );
  const norm = r
    .str('norm_rel_ebd', 'none')
    .toLowerCase()
    .split('|')
    .map((s) => s.trim());
  if (norm.some((n) => n !== 'none' && n !== 'layer_norm'))
    r.rejectIfSet('norm_rel_ebd', 'use "layer_norm" or "none"');
  const maxPositions = r.int('max_position_embeddings', 512);
  const mrp = typeof config.max_relative_positions === 'number' ? config.max_relative_positions : -1;
  const maxRelative = mrp < 1 ? maxPositions : mrp;
  const buckets = typeof config.position_buckets === 'number' ? config.position_buckets : -1;
  const types = posAttTypes(config);
  const typeVocab = typeof config.type_vocab_size === 'number' ? config.type_vocab_size : 0;
  return {
    vocabSize: r.int('vocab_size', 128100),
    hidden,
    embeddingSize: r.int('embedding_size', hidden),
    nLayers: r.int('num_hidden_layers', 24),
    nHead,
    headDim,
    intermediate: r.int('intermediate_size', 6144),
    maxPositions,
    typeVocab,
    positionBiasedInput: r.bool('position_biased_input', true),
    eps: r.num('layer_norm_eps', 1e-7),
    act: r.str('hidden_act', 'gelu'),
    hiddenDropout: r.prob('hidden_dropout_prob', 0.1),
    attentionDropout: r.prob('attention_probs_dropout_prob', 0.1),
    span: buckets > 0 ? buckets : maxRelative,
    buckets,
    maxRelative,
    c2p: types.includes('c2p'),
    p2c: types.includes('p2c'),
    shareAttKey: r.bool('share_att_key', false),
    normRelEmbedding: norm.includes('layer_norm'),
    poolerHidden: r.int('pooler_hidden_size', hidden),
    poolerAct: r.str('pooler_hidden_act', 'gelu'),
    poolerDropout: r.prob('pooler_dropout', 0),
    clsDropout: r.prob('cls_dropout', r.prob('hidden_dropout_prob', 0.1)),
  };
}

/**
 * HF `make_log_bucket_position` for one distance, in float32 as torch computes it: distances within
 * ±bucketSize/2 stay, farther ones share log-spaced buckets up to `maxPosition`.
 * @example logBucket(100, 32, 128) // 16 + ceil(ln(100/16) / ln(127/16) · 15) = 16 + ceil(13.27) = 30
 */
export function logBucket(d: number, bucketSize: number, maxPosition: number): number {
  const mid = Math.floor(bucketSize / 2);
  const abs = d < mid && d > -mid ? mid - 1 : Math.abs(d);
  if (abs <= mid) return d;
  const f = Math.fround;
  const ratio = f(Math.log(f(abs / mid)));
  const scaled = f(f(ratio / f(Math.log((maxPosition - 1) / mid))) * (mid - 1));
  return Math.sign(d) * (Math.ceil(scaled) + mid);
}

/** δ(i, j) = clamp(bucket(i − j) + span, 0, 2·span − 1) for T tokens, row-major [T, T]. */
export function relativeIndex(t: number, dims: Pick<DebertaV2Dims, 'span' | 'buckets' | 'maxRelative'>) {
  const idx = new Int32Array(t * t);
  const bucketed = dims.buckets > 0 && dims.maxRelative > 0;
  for (let i = 0; i < t; i++) {
    for (let j = 0; j < t; j++) {
      const rel = bucketed ? logBucket(i - j, dims.buckets, dims.maxRelative) : i - j;
      idx[i * t + j] = Math.min(Math.max(rel + dims.span, 0), 2 * dims.span - 1);
    }
  }
  return idx;
}
