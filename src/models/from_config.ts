/**
 * Choosing the model class from a Hugging Face config (`architectures` / `model_type`) and a task.
 */
import { ConfigError, NotSupportedError } from '../errors.js';
import type { HFConfig, ModelType, PreTrainedModel, TaskType } from './base.js';
import { BertModel } from './bert.js';
import { BertForSequenceClassification } from './bert_classification.js';
import { withNumLabels } from './config.js';
import { GPT2ForSequenceClassification, GPT2LMHeadModel } from './gpt2.js';
import { LlamaForCausalLM, LlamaForSequenceClassification } from './llama.js';
import { Qwen2ForCausalLM, Qwen2ForSequenceClassification } from './qwen2.js';
import { MistralForCausalLM, MistralForSequenceClassification } from './mistral.js';
import {
  Gemma2ForCausalLM,
  Gemma2ForSequenceClassification,
  GemmaForCausalLM,
  GemmaForSequenceClassification,
} from './gemma.js';
import { Phi3ForCausalLM, Phi3ForSequenceClassification } from './phi3.js';
import { DebertaV2ForSequenceClassification } from './deberta_v2.js';

export interface FromConfigOptions {
  /** The head to build; defaults to the one `architectures` names (or the model type's usual one). */
  task?: TaskType;
  /** Number of classes for SEQ_CLS (1 = regression); written into the config's `id2label`. */
  numLabels?: number;
  /**
   * Written to `pad_token_id`: decoder classifiers pool the last non-pad token, so batches of more
   * than one row need it (as `model.config.pad_token_id = tokenizer.pad_token_id` in transformers).
   */
  padTokenId?: number;
}

const MODEL_TYPES: ModelType[] = [
  'bert',
  'roberta',
  'gpt2',
  'llama',
  'qwen2',
  'mistral',
  'gemma2',
  'gemma',
  'phi3',
  'deberta-v2',
];

/** `architectures` prefixes of each model type (`DebertaV2…` has no dash). */
const ARCH_PREFIX: Record<ModelType, string> = {
  bert: 'bert',
  roberta: 'roberta',
  gpt2: 'gpt2',
  llama: 'llama',
  qwen2: 'qwen2',
  mistral: 'mistral',
  gemma2: 'gemma2',
  gemma: 'gemma',
  phi3: 'phi3',
  'deberta-v2': 'debertav2',
};

/** `model_type`, or the prefix of the first `architectures` entry (e.g. `LlamaForCausalLM` → llama). */
export function modelTypeOf(config: HFConfig): ModelType {
  const given = config.model_type;
  if (typeof given === 'string') {
    if ((MODEL_TYPES as string[]).includes(given)) return given as ModelType;
    throw new NotSupportedError(
      'config.model_type',
      `model_type "${given}"`,
      `use one of ${MODEL_TYPES.join(', ')}`,
    );
  }
  const arch = config.architectures?.[0] ?? '';
  const found = MODEL_TYPES.find((t) => arch.toLowerCase().startsWith(ARCH_PREFIX[t]));
  if (!found) {
    throw new ConfigError(
      'config',
      'has neither a known model_type nor architectures',
      config.architectures,
      'set "model_type" in config.json',
    );
  }
  return found;
}

/** The task the config's `architectures` entry stands for, or the model type's default. */
export function taskOf(config: HFConfig, modelType: ModelType): TaskType {
  const arch = config.architectures?.[0] ?? '';
  if (arch.endsWith('ForSequenceClassification')) return 'SEQ_CLS';
  if (arch.endsWith('LMHeadModel') || arch.endsWith('ForCausalLM')) return 'CAUSAL_LM';
  if (modelType === 'deberta-v2') return 'SEQ_CLS'; // the only DeBERTa head implemented
  return modelType === 'bert' || modelType === 'roberta' ? 'FEATURE_EXTRACTION' : 'CAUSAL_LM';
}

/**
 * A freshly initialised model (seeded by `manualSeed`) of the class the config and task call for.
 * The model keeps a copy of the config with `model_type` and, for SEQ_CLS, `id2label` filled in.
 *
 * @example
 * const clf = modelFromConfig(llamaConfig, { task: 'SEQ_CLS', numLabels: 2 }); // LlamaForSequenceClassification
 * const lm = modelFromConfig({ model_type: 'gpt2', n_layer: 2, n_embd: 32, n_head: 4 }); // GPT2LMHeadModel
 */
export function modelFromConfig(config: HFConfig, opts: FromConfigOptions = {}): PreTrainedModel {
  const modelType = modelTypeOf(config);
  const task = opts.task ?? taskOf(config, modelType);
  let cfg: HFConfig = { ...config, model_type: modelType };
  if (opts.numLabels !== undefined) {
    if (task !== 'SEQ_CLS')
      throw new ConfigError(
        'modelFromConfig.numLabels',
        'applies only to task SEQ_CLS',
        task,
        'drop numLabels or use task SEQ_CLS',
      );
    cfg = withNumLabels(cfg, opts.numLabels);
  }
  if (opts.padTokenId !== undefined) {
    if (!Number.isInteger(opts.padTokenId) || opts.padTokenId < 0) {
      throw new ConfigError(
        'modelFromConfig.padTokenId',
        'must be a non-negative integer',
        opts.padTokenId,
        "pass the tokenizer's pad (or EOS) id",
      );
    }
    cfg.pad_token_id = opts.padTokenId;
  }
  const model = build(modelType, task, cfg);
  cfg.architectures = [model.architecture]; // cfg is this model's own copy
  return model;
}

function build(modelType: ModelType, task: TaskType, cfg: HFConfig): PreTrainedModel {
  switch (`${modelType}:${task}`) {
    case 'bert:SEQ_CLS':
    case 'roberta:SEQ_CLS':
      return new BertForSequenceClassification(cfg);
    case 'bert:FEATURE_EXTRACTION':
    case 'roberta:FEATURE_EXTRACTION':
      return new BertModel(cfg);
    case 'gpt2:CAUSAL_LM':
      return new GPT2LMHeadModel(cfg);
    case 'gpt2:SEQ_CLS':
      return new GPT2ForSequenceClassification(cfg);
    case 'llama:CAUSAL_LM':
      return new LlamaForCausalLM(cfg);
    case 'llama:SEQ_CLS':
      return new LlamaForSequenceClassification(cfg);
    case 'qwen2:CAUSAL_LM':
      return new Qwen2ForCausalLM(cfg);
    case 'qwen2:SEQ_CLS':
      return new Qwen2ForSequenceClassification(cfg);
    case 'mistral:CAUSAL_LM':
      return new MistralForCausalLM(cfg);
    case 'mistral:SEQ_CLS':
      return new MistralForSequenceClassification(cfg);
    case 'gemma:CAUSAL_LM':
      return new GemmaForCausalLM(cfg);
    case 'gemma:SEQ_CLS':
      return new GemmaForSequenceClassification(cfg);
    case 'gemma2:CAUSAL_LM':
      return new Gemma2ForCausalLM(cfg);
    case 'gemma2:SEQ_CLS':
      return new Gemma2ForSequenceClassification(cfg);
    case 'phi3:CAUSAL_LM':
      return new Phi3ForCausalLM(cfg);
    case 'phi3:SEQ_CLS':
      return new Phi3ForSequenceClassification(cfg);
    case 'deberta-v2:SEQ_CLS':
      return new DebertaV2ForSequenceClassification(cfg);
    default:
      throw new NotSupportedError(
        'modelFromConfig',
        `task ${task} for model type ${modelType}`,
        'use SEQ_CLS for BERT/RoBERTa/DeBERTa-v2, CAUSAL_LM or SEQ_CLS for the decoders',
      );
  }
}
