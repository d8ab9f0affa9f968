/**
 * The contract every model class meets, so tuners and the trainer never depend on a concrete
 * architecture (docs/design.md "PreTrainedModel": tuners import only this contract, never a model class).
 */
import type { Tensor } from '../tensor/tf.js';
import { Module } from '../nn/module.js';

/** PEFT's `task_type` values the project supports. */
export type TaskType = 'SEQ_CLS' | 'CAUSAL_LM' | 'FEATURE_EXTRACTION';

export type ModelType =
  'bert' | 'roberta' | 'gpt2' | 'llama' | 'qwen2' | 'mistral' | 'gemma' | 'gemma2' | 'phi3' | 'deberta-v2';

/** Per-layer key/value cache for decoding: k, v are [B, nKvHead, T, headDim]. Owned by the caller. */
export interface KVCache {
  keys: Tensor[];
  values: Tensor[];
}

export interface ModelInputs {
  /** int32 [B, T] */
  inputIds: Tensor;
  /** [B, T], 1 for real tokens and 0 for padding. */
  attentionMask?: Tensor;
  /** int32 [B, T] (BERT segment ids). */
  tokenTypeIds?: Tensor;
  /**
   * Classification: int32 [B] (float32 [B] for regression). Causal LM: int32 [B, T], shifted inside
   * the model as Hugging Face does; -100 is ignored.
   */
  labels?: Tensor;
  /** Decoder KV cache from a previous call; the new keys/values are appended (returned in the output). */
  pastKeyValues?: KVCache;
  useCache?: boolean;
  /**
   * Absolute position of each row's first new token (B numbers), for batches whose rows hold caches
   * of different real lengths, left-padded to one length and masked by `attentionMask` (continuous
   * batching, models/ragged_cache.ts). Absent: every row starts at the cache length.
   */
  positionOffsets?: number[];
  /**
   * The condition of each row for a conditioned tuner (HyperLoRA): int32 [B] condition ids or float32
   * [B, conditionDim] condition vectors; the collator fills it from `Example.condition`. Models ignore
   * it; the tuner reads it (docs/hyperlora.md).
   */
  condition?: Tensor;
}

export interface ModelOutput {
  /** Classification [B, numLabels]; causal LM [B, T, vocab]. */
  logits: Tensor;
  /** Scalar mean loss when labels were given. */
  loss?: Tensor;
  pastKeyValues?: KVCache;
}

/** `config.json` as read from disk (snake_case, as Hugging Face writes it). */
export type HFConfig = Record<string, unknown> & { model_type?: string; architectures?: string[] };

/**
 * A model ready for tuners: module paths equal the Hugging Face checkpoint keys (e.g.
 * `model.layers.0.self_attn.q_proj`, `bert.encoder.layer.0.attention.self.query`).
 */
export abstract class PreTrainedModel extends Module {
  abstract readonly modelType: ModelType;
  abstract readonly taskType: TaskType;
  /** The Hugging Face config this model was built from (written back by `savePretrained`). */
  abstract readonly config: HFConfig;

  abstract forward(inputs: ModelInputs): ModelOutput;

  /**
   * Module paths of the output layer (LM head or classification head): excluded from
   * `all-linear` and the default `modulesToSave` for SEQ_CLS (PEFT utils/constants.py, utils/other.py).
   */
  abstract outputModuleNames(): string[];

  /** Hugging Face class name written to `architectures` (e.g. `LlamaForCausalLM`). */
  abstract readonly architecture: string;

  /** Pairs of parameter names that share one tensor (tied embeddings), `[kept, alias]`. */
  tiedParameterNames(): [string, string][] {
    return [];
  }
}
