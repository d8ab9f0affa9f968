/**
 * Loading and saving whole models: a Hugging Face folder (`config.json` + safetensors) or a llama2.c
 * `.bin` checkpoint in, a Hugging Face folder out. File formats are io's job; this file picks the class
 * (from_config.ts) and copies the weights in (weights.ts).
 */
import { CheckpointError, ConfigError, NotSupportedError } from '../errors.js';
import { Linear4bit, quantizeModel, type QuantizeOptions } from '../nn/linear4bit.js';
import { HalfEmbedding, halfEmbeddings } from '../nn/half_embedding.js';
import { initBackend, type BackendName } from '../tensor/backend.js';
import { releaseMemory } from '../tensor/memory.js';
import { deferInit, manualSeed } from '../nn/init.js';
import { writeHFFolder, type WriteHFFolderOptions } from '../io/hf_folder.js';
import { openHFFolderStream } from '../io/hf_stream.js';
import { readLlama2c } from '../io/llama2c.js';
import { baseName, isDirectory, pathExists } from '../io/source.js';
import type { Tensor } from '../tensor/tf.js';
import type { HFConfig, PreTrainedModel, TaskType } from './base.js';
import { modelFromConfig, type FromConfigOptions } from './from_config.js';
import { loadWeights, type WeightLoadReport } from './weights.js';
import { streamWeights, type StreamWeightsOptions } from './stream_load.js';

export { modelFromConfig, modelTypeOf, taskOf, type FromConfigOptions } from './from_config.js';

export interface LoadModelOptions {
  /** Compute backend to select first (default: leave the current one). */
  backend?: BackendName;
  /** Head to build; default from `architectures` (a causal-LM checkpoint can be loaded as SEQ_CLS). */
  task?: TaskType;
  /** Classes for SEQ_CLS (1 = regression). */
  numLabels?: number;
  /** Sets `pad_token_id` (needed by decoder classifiers for batches; llama2.c checkpoints have none). */
  padTokenId?: number;
  /** Parameter dtype; only float32 is implemented (weights of any float dtype are widened to it). */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** Reseeds the generator (`manualSeed`) before building, which fixes a fresh head's init. */
  seed?: number;
  /**
   * QLoRA: store every linear layer except the output head as 4-bit NF4/FP4 (blocksize 64), dequantised
   * on the fly (nn/linear4bit.ts; bitsandbytes `quantize_4bit`).
   */
  quantize?: 'nf4' | 'fp4';
  /** With `quantize`: quantise the absmax constants again (8-bit, blocks of 256), as the QLoRA recipe. */
  doubleQuant?: boolean;
  /**
   * With `quantize`: storage of the frozen embeddings (and an output head tied to one). `float16`
   * halves them (e.g. SmolLM-135M's tied 49,152 × 576 table: 113 → 57 MB), as transformers' 4-bit
   * loader stores non-quantised modules when no `torch_dtype` is given; lookups and the tied head
   * widen to f32 block by block, so the model computes with `weight.half().float()` — the values
   * PEFT's `prepare_model_for_kbit_training` leaves. Default `float32` (the checkpoint's values).
   */
  embeddingDtype?: 'float32' | 'float16';
}

/** What {@link loadModelWithReport} did. */
export interface LoadReport extends WeightLoadReport {
  /** `hf-folder` or `llama2c`. */
  format: 'hf-folder' | 'llama2c';
  architecture: string;
  /** The backend selected by the `backend` option, if one was given. */
  backend?: string;
}

/** Checkpoint formats that are pickles: never unpickled: unpickling runs arbitrary code (docs/design.md "Floors", io/). */
const PICKLE_NAME = /^(pytorch_model.*\.bin|.*\.(pt|pth|ckpt))$/;

/** Reads a non-folder checkpoint whole (llama2.c `.bin`; folders stream instead). */
async function readCheckpoint(
  path: string,
): Promise<{ config: HFConfig; weights: Map<string, Tensor>; format: LoadReport['format'] }> {
  if (!(await pathExists(path))) {
    throw new CheckpointError(
      path,
      'no such model folder or file',
      undefined,
      'pass a Hugging Face folder or a llama2.c .bin',
    );
  }
  if (PICKLE_NAME.test(baseName(path))) {
    throw new CheckpointError(
      path,
      'is a PyTorch pickle, which is never loaded (it can run code)',
      undefined,
      'convert it to safetensors in a Hugging Face folder',
    );
  }
  const { config, weights } = await readLlama2c(path);
  return { config, weights, format: 'llama2c' };
}

/**
 * Loads a model with a report of what was new or left out. The model is in eval mode (as after HF
 * `from_pretrained`); call `train()` to fine-tune. Memory the load used and no longer needs is handed
 * back before it returns (`releaseMemory`). The caller owns the model (`dispose()`).
 *
 * @example
 * const { model, report } = await loadModelWithReport('stories260K.bin', { task: 'SEQ_CLS', numLabels: 2, seed: 1 });
 * report.newKeys; // ['score.weight']: the classification head starts fresh
 */
export async function loadModelWithReport(
  path: string,
  opts: LoadModelOptions = {},
): Promise<{ model: PreTrainedModel; report: LoadReport }> {
  if (opts.doubleQuant && opts.quantize === undefined) {
    throw new ConfigError('loadModel.doubleQuant', 'needs quantize', opts.doubleQuant, "add quantize: 'nf4'");
  }
  if (opts.embeddingDtype !== undefined && !['float32', 'float16'].includes(opts.embeddingDtype)) {
    throw new ConfigError(
      'loadModel.embeddingDtype',
      'must be float32 or float16',
      opts.embeddingDtype,
      "pass embeddingDtype: 'float16' or leave it out",
    );
  }
  const halfEmbeddingsOn = opts.embeddingDtype === 'float16';
  if (halfEmbeddingsOn && opts.quantize === undefined) {
    throw new ConfigError(
      'loadModel.embeddingDtype',
      'float16 needs quantize (it is the storage of a quantised load)',
      opts.embeddingDtype,
      "add quantize: 'nf4', or leave embeddingDtype out",
    );
  }
  if (opts.dtype !== undefined && opts.dtype !== 'float32') {
    throw new NotSupportedError('loadModel.dtype', `dtype "${opts.dtype}"`, 'use float32 (the default)');
  }
  const backend = opts.backend ? (await initBackend(opts.backend)).backend : undefined;
  const fromConfig: FromConfigOptions = {};
  if (opts.task !== undefined) fromConfig.task = opts.task;
  if (opts.numLabels !== undefined) fromConfig.numLabels = opts.numLabels;
  if (opts.padTokenId !== undefined) fromConfig.padTokenId = opts.padTokenId;
  const quantize: QuantizeOptions | undefined =
    opts.quantize === undefined
      ? undefined
      : { quantType: opts.quantize, doubleQuant: opts.doubleQuant ?? false };
  const finish = (model: PreTrainedModel, loaded: WeightLoadReport, format: LoadReport['format']) => {
    model.eval();
    // the load's transients (read buffers, V8's grown young generation, malloc's free pages) go back
    // now rather than whenever V8 and malloc get to it: RSS after a load is what the model holds
    // (tensor/memory.ts; 135M NF4: 182 → 170 MB)
    releaseMemory();
    const report: LoadReport = { ...loaded, format, architecture: model.architecture };
    if (backend !== undefined) report.backend = backend;
    return { model, report };
  };
  if (await isDirectory(path)) {
    // a Hugging Face folder streams: deferred init, then one tensor at a time (stream_load.ts)
    const folder = await openHFFolderStream(path);
    try {
      if (opts.seed !== undefined) manualSeed(opts.seed);
      const { value: model, pending } = deferInit(() => modelFromConfig(folder.config, fromConfig));
      try {
        const streamOpts: StreamWeightsOptions = { pending, allowNew: allowedNew(model) };
        if (quantize) streamOpts.quantize = quantize;
        if (halfEmbeddingsOn) streamOpts.halfEmbeddings = true;
        return finish(model, await streamWeights(model, folder, streamOpts), 'hf-folder');
      } catch (err) {
        model.dispose();
        throw err;
      }
    } finally {
      await folder.close();
    }
  }
  const { config, weights, format } = await readCheckpoint(path);
  try {
    if (opts.seed !== undefined) manualSeed(opts.seed);
    const model = modelFromConfig(config, fromConfig);
    try {
      const loaded = loadWeights(model, weights, { allowNew: allowedNew(model) });
      if (quantize) quantizeModel(model, quantize);
      if (halfEmbeddingsOn) halfEmbeddings(model);
      return finish(model, loaded, format);
    } catch (err) {
      model.dispose();
      throw err;
    }
  } finally {
    weights.forEach((t) => t.dispose());
  }
}

/** A fresh head is expected when a checkpoint is loaded for another task; a bare encoder may lack a pooler. */
function allowedNew(model: PreTrainedModel): string[] {
  if (model.taskType === 'SEQ_CLS') return [...model.outputModuleNames(), 'pooler']; // DeBERTa's top-level pooler is new on a bare encoder
  return model.taskType === 'FEATURE_EXTRACTION' ? ['pooler'] : [];
}

/**
 * Loads a model from a Hugging Face folder or a llama2.c `.bin`, picking the class from `config.json`
 * (`architectures` / `model_type`) or the llama2.c header, and the head from `task`.
 *
 * @example
 * const lm = await loadModel('../shared/data/models/stories260K/stories260K.bin'); // LlamaForCausalLM
 * const clf = await loadModel('./my-bert', { task: 'SEQ_CLS', numLabels: 2 });
 */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<PreTrainedModel> {
  return (await loadModelWithReport(path, opts)).model;
}

/**
 * Writes the model as a Hugging Face folder: `config.json` (with `architectures` set to the model's
 * class) and `model.safetensors` without tied aliases (as transformers saves them).
 *
 * @example
 * await saveModel(model, './out', { tokenizerFiles: { 'tok512.bin': bytes } });
 */
export async function saveModel(
  model: PreTrainedModel,
  dir: string,
  opts: WriteHFFolderOptions = {},
): Promise<void> {
  if (model.namedModules().some(([, m]) => m instanceof Linear4bit || m instanceof HalfEmbedding)) {
    throw new NotSupportedError(
      'saveModel',
      'saving a 4-bit quantised model',
      'save the f32 model, or only the adapter (savePretrained)',
    );
  }
  const aliases = new Set(model.tiedParameterNames().map(([, alias]) => alias));
  const weights = new Map([...model.stateDict()].filter(([k]) => !aliases.has(k)));
  const config: HFConfig = { ...model.config, architectures: [model.architecture] };
  await writeHFFolder(dir, config, weights, opts);
}
