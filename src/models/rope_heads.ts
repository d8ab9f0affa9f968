/**
 * The causal-LM and sequence-classification heads of the RoPE decoder families (Qwen2, Mistral,
 * Phi-3, Gemma, Gemma 2): the trunk `model` (embeddings, the family's blocks, final norm) under
 * `lm_head` or `score` (decoder_heads.ts). A family supplies only its names, its config reader and its
 * block; the head classes of each family are these with its {@link RopeFamily}.
 */
import type { HFConfig, ModelType } from './base.js';
import { DecoderForCausalLM, DecoderForSequenceClassification } from './decoder_heads.js';
import { RopeDecoderLayer, RopeDecoderModel, type RopeDecoderDims, type RopeLayer } from './rope_decoder.js';

/** What differs between the RoPE decoder families' heads. */
export interface RopeFamily {
  modelType: ModelType;
  /** Hugging Face class prefix: `Qwen2` → `Qwen2ForCausalLM`, `Qwen2ForSequenceClassification`, `Qwen2Config`. */
  name: string;
  /** Reads and checks the family's `config.json`. */
  dims: (config: HFConfig) => RopeDecoderDims;
  /** The family's block (default: the pre-norm {@link RopeDecoderLayer}). */
  layer?: (dims: RopeDecoderDims) => RopeLayer;
}

const trunk = (family: RopeFamily, dims: RopeDecoderDims) =>
  new RopeDecoderModel(dims, () => family.layer?.(dims) ?? new RopeDecoderLayer(dims));

/**
 * `<Family>ForCausalLM`: logits [B, T, V] from `lm_head` (tied to `model.embed_tokens` when the config
 * says so), soft-capped when the family has `final_logit_softcapping`; labels give the shifted LM loss.
 *
 * @example
 * const lm = new RopeForCausalLM(config, { modelType: 'qwen2', name: 'Qwen2', dims: qwen2Dims });
 */
export class RopeForCausalLM extends DecoderForCausalLM {
  declare model: RopeDecoderModel;
  readonly modelType: ModelType;
  readonly architecture: string;

  constructor(config: HFConfig, family: RopeFamily) {
    const dims = family.dims(config);
    super(config, 'model', trunk(family, dims), {
      embeddingName: 'embed_tokens',
      hidden: dims.hidden,
      vocabSize: dims.vocabSize,
      tieWordEmbeddings: dims.tieWordEmbeddings,
      finalLogitSoftcapping: dims.finalSoftcap,
    });
    this.modelType = family.modelType;
    this.architecture = `${family.name}ForCausalLM`;
  }
}

/**
 * `<Family>ForSequenceClassification`: `score` (no bias) on the last non-pad token of each row (no
 * final soft-capping, as Hugging Face).
 *
 * @example
 * const cls = new RopeForSequenceClassification({ ...config, num_labels: 3 }, QWEN2);
 */
export class RopeForSequenceClassification extends DecoderForSequenceClassification {
  declare model: RopeDecoderModel;
  readonly modelType: ModelType;
  readonly architecture: string;

  constructor(config: HFConfig, family: RopeFamily) {
    const dims = family.dims(config);
    super(config, 'model', trunk(family, dims), dims.hidden, `${family.name}Config`);
    this.modelType = family.modelType;
    this.architecture = `${family.name}ForSequenceClassification`;
  }
}
