/**
 * The two heads every decoder-only architecture shares (GPT-2, Llama): a causal-LM head over the
 * vocabulary and a sequence-classification head on the last non-pad token (HF's `*ForCausalLM` /
 * `*LMHeadModel` and `*ForSequenceClassification`). Each architecture supplies its trunk; module
 * paths stay the Hugging Face keys (`transformer.*` / `model.*`, `lm_head`, `score`).
 */
import { tf, type Tensor } from '../tensor/tf.js';
import type { Module, TensorLayer } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { PreTrainedModel, type HFConfig, type KVCache, type ModelInputs, type ModelOutput } from './base.js';
import { ConfigReader, numLabelsOf, problemTypeOf } from './config.js';
import {
  causalLmLoss,
  classificationLoss,
  gatherPositions,
  lastNonPadIndices,
  tidyOutput,
} from './common.js';
import { chunkedCausalLmOutput } from './chunked_head.js';

/** Hidden states of the decoder stack and the updated cache. */
export interface DecoderOutput {
  hidden: Tensor;
  cache?: KVCache;
}

/** A decoder trunk: embeddings, blocks and final norm; `forward` runs inside the caller's tidy. */
export interface DecoderTrunk extends Module {
  forward(inputs: ModelInputs, where: string): DecoderOutput;
}

export interface CausalLMSpec {
  /** Path of the token embedding inside the trunk (`wte`, `embed_tokens`): tied to `lm_head`. */
  embeddingName: string;
  hidden: number;
  vocabSize: number;
  tieWordEmbeddings: boolean;
  /** Gemma 2: logits become `cap·tanh(logits/cap)` (before the loss), null or absent = off. */
  finalLogitSoftcapping?: number | null;
}

/**
 * Logits over the vocabulary [B, T, V]; labels [B, T] give the shifted LM loss (HF shifts inside,
 * -100 ignored); `useCache` returns the KV cache.
 */
export abstract class DecoderForCausalLM extends PreTrainedModel {
  declare lm_head: TensorLayer;
  readonly taskType = 'CAUSAL_LM' as const;
  readonly tied: boolean;
  private readonly tiedNames: [string, string];
  private readonly softcap: number | null;

  protected constructor(
    readonly config: HFConfig,
    private readonly trunkName: string,
    trunk: DecoderTrunk,
    spec: CausalLMSpec,
  ) {
    super();
    this.registerModule(trunkName, trunk);
    const head = this.registerModule('lm_head', new Linear(spec.hidden, spec.vocabSize, { bias: false }));
    this.tied = spec.tieWordEmbeddings;
    this.softcap = spec.finalLogitSoftcapping ?? null;
    this.tiedNames = [`${trunkName}.${spec.embeddingName}.weight`, 'lm_head.weight'];
    if (this.tied)
      head.registerParameter('weight', (trunk.getSubmodule(spec.embeddingName) as Embedding).weight);
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const trunk = this.getSubmodule(this.trunkName) as DecoderTrunk;
      const { hidden, cache } = trunk.forward(inputs, this.architecture); // [B, T, H]
      const chunked = chunkedCausalLmOutput(this, this.lm_head, hidden, inputs, this.softcap);
      if (chunked) return cache ? { ...chunked, pastKeyValues: cache } : chunked; // loss without [B, T, V] logits
      let logits = this.lm_head.forward(hidden); // [B, T, V]
      if (this.softcap !== null) logits = tf.mul(tf.tanh(tf.div(logits, this.softcap)), this.softcap);
      const out: ModelOutput = { logits };
      if (inputs.labels) out.loss = causalLmLoss(logits, inputs.labels, this.architecture);
      if (cache) out.pastKeyValues = cache;
      return out;
    });
  }

  outputModuleNames(): string[] {
    return ['lm_head'];
  }

  override tiedParameterNames(): [string, string][] {
    return this.tied ? [this.tiedNames] : [];
  }
}

/**
 * `score` (no bias) on the last non-pad token of each row, found from `pad_token_id` as HF does;
 * cross-entropy, or MSE for one label / `problem_type: regression`.
 */
export abstract class DecoderForSequenceClassification extends PreTrainedModel {
  declare score: TensorLayer;
  readonly taskType = 'SEQ_CLS' as const;
  readonly numLabels: number;

  protected constructor(
    readonly config: HFConfig,
    private readonly trunkName: string,
    trunk: DecoderTrunk,
    hidden: number,
    /** Config class name used in error messages (`GPT2Config`, `LlamaConfig`). */
    private readonly configName: string,
  ) {
    super();
    this.numLabels = numLabelsOf(config);
    this.registerModule(trunkName, trunk);
    this.registerModule('score', new Linear(hidden, this.numLabels, { bias: false }));
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const where = this.architecture;
      const pad = new ConfigReader(this.config, this.configName).optionalTokenId('pad_token_id');
      const trunk = this.getSubmodule(this.trunkName) as DecoderTrunk;
      const { hidden } = trunk.forward({ ...inputs, useCache: false }, where); // [B, T, H]
      const last = lastNonPadIndices(inputs.inputIds, pad, where); // int32 [B]
      const logits = this.score.forward(gatherPositions(hidden, last)); // [B, numLabels]
      if (!inputs.labels) return { logits };
      const problem = problemTypeOf(this.config, this.numLabels);
      return { logits, loss: classificationLoss(logits, inputs.labels, problem, where) };
    });
  }

  outputModuleNames(): string[] {
    return ['score'];
  }
}
