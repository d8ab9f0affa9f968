/**
 * HyperLoRA training glue (`lowrank train --method hyperlora`): one hypernetwork trained on several causal-LM text sets at once,
 * each set a named condition (`--conditions shakespeare=input.txt,stories=stories.txt`), and the
 * inference side (`eval` / `generate --condition <name>`) that pins a saved hypernetwork to one
 * condition as a plain LoRA (docs/hyperlora.md).
 *
 * How the condition of each row reaches the model: the shared Trainer collates `Example`s into
 * tensors and carries no per-example side information except `tokenTypeIds`, which it copies row by
 * row (and `evaluate` passes on). So each example's token-type ids are offset by
 * `CONDITION_STRIDE · (condition + 1)`; `RowConditionModel` decodes the condition of every row from
 * its first position, restores the original ids, and calls `HyperLoraModel.forward(inputs, ids)`.
 * Batches therefore mix conditions freely, as the shuffled loader draws them.
 */
import type { Variable } from '../tensor/tf.js';
import { ConfigError, DataError, internal } from '../errors.js';
import type { ModelInputs, ModelOutput } from '../models/base.js';
import type { Module } from '../nn/module.js';
import type { Example } from '../training/data/dataset.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import type { HyperLoraModel } from '../tuners/hyperlora/model.js';
import { loadDataSets, type DataOptions, type DataSets } from './data.js';

/** Token-type ids are far below this (BERT: 2); a row's condition k is stored as + STRIDE·(k+1). */
export const CONDITION_STRIDE = 1024;

export interface ConditionSet {
  name: string;
  path: string;
}

/** Offsets every example's token-type ids by the condition (see the file comment). */
export function tagCondition(examples: Example[], condition: number): Example[] {
  const off = CONDITION_STRIDE * (condition + 1);
  return examples.map((e) => ({
    ...e,
    tokenTypeIds: (e.tokenTypeIds ?? e.inputIds.map(() => 0)).map((t) => t + off),
  }));
}

export interface ConditionDataSets extends DataSets {
  names: string[];
  /** Each condition's held-out examples (tagged), in `names` order. */
  evalByCondition: Example[][];
}

/**
 * Loads every condition's text set like a single data set (same tokenizer, `maxLength`, `evalFraction`
 * split) and merges them into one tagged train set and one tagged eval set.
 * @example await loadConditionSets([{ name: 'a', path: 'a.txt' }, { name: 'b', path: 'b.txt' }], opts, tok);
 */
export async function loadConditionSets(
  sets: ConditionSet[],
  opts: Omit<DataOptions, 'data' | 'evalData'>,
  tok: TextTokenizer,
): Promise<ConditionDataSets> {
  const train: Example[] = [];
  const evalByCondition: Example[][] = [];
  for (const [k, s] of sets.entries()) {
    const d = await loadDataSets({ ...opts, data: s.path }, tok);
    if (d.task !== 'causal_lm')
      throw new DataError(
        `conditions ${s.name}=${s.path}`,
        `HyperLoRA trains causal LMs on text (got task ${d.task})`,
        undefined,
        'give text files: a classifier would need a trained head, which HyperLoRA does not have yet',
      );
    train.push(...tagCondition(d.train, k));
    evalByCondition.push(tagCondition(d.eval, k));
  }
  return {
    task: 'causal_lm',
    train,
    eval: evalByCondition.flat(),
    numLabels: 0,
    names: sets.map((s) => s.name),
    evalByCondition,
  };
}

/**
 * The Trainer's view of a HyperLoRA model: decodes each row's condition from the tagged token-type
 * ids. Its forward runs under the caller's tidy scope (the Trainer's `variableGrads`, `evaluate`'s
 * `tf.tidy`), which also owns the restored token-type tensor.
 */
export class RowConditionModel {
  constructor(readonly hyper: HyperLoraModel) {}

  forward(inputs: ModelInputs): ModelOutput {
    const tt = inputs.tokenTypeIds;
    if (!tt || tt.rank !== 2) internal('a HyperLoRA batch carries no condition (untagged examples)');
    const [n, t] = tt!.shape as [number, number];
    const data = tt!.dataSync();
    const conditions = Array.from({ length: n }, (_, b) => Math.floor(data[b * t]! / CONDITION_STRIDE) - 1);
    // the text sets are plain text, so their original token-type ids were all zero: drop them
    const { tokenTypeIds: _dropped, ...rest } = inputs;
    void _dropped;
    return this.hyper.forward(rest, conditions);
  }
  trainableParameters(): [string, Variable][] {
    return this.hyper.trainableParameters();
  }
  parameters(): Variable[] {
    return this.hyper.parameters();
  }
  get training(): boolean {
    return this.hyper.training;
  }
  train(mode = true): this {
    this.hyper.train(mode);
    return this;
  }
  eval(): this {
    this.hyper.eval();
    return this;
  }
  savePretrained(dir: string): Promise<void> {
    return this.hyper.savePretrained(dir);
  }
}

export interface HyperTrainOptions {
  r: number;
  loraAlpha?: number;
  loraDropout: number;
  targetModules?: string[];
  hiddenDim?: number;
  embeddingDim?: number;
  names: string[];
}

/** Wraps `base` with a fresh hypernetwork for the named conditions (targets default as LoRA's). */
export async function buildHyperLora(base: Module, o: HyperTrainOptions): Promise<RowConditionModel> {
  const { HyperLoraConfig, HyperLoraModel } = await import('../tuners/hyperlora/index.js');
  const { DEFAULT_TARGET_MODULES } = await import('../tuners/base/matching.js');
  const modelType = (base as { config?: { model_type?: string } }).config?.model_type ?? '';
  const targets = o.targetModules ?? DEFAULT_TARGET_MODULES[modelType];
  if (!targets)
    throw new ConfigError(
      'HyperLoraConfig.targetModules',
      `has no default for model type "${modelType}"`,
      undefined,
      'list the modules to adapt',
    );
  const config = new HyperLoraConfig({
    targetModules: [...targets],
    r: o.r,
    loraAlpha: o.loraAlpha ?? 2 * o.r,
    loraDropout: o.loraDropout,
    numConditions: o.names.length,
    conditionNames: o.names,
    ...(o.hiddenDim !== undefined ? { hiddenDim: o.hiddenDim } : {}),
    ...(o.embeddingDim !== undefined ? { embeddingDim: o.embeddingDim } : {}),
  });
  return new RowConditionModel(new HyperLoraModel(base, config));
}

/** Per-condition held-out loss (and perplexity) of a trained HyperLoRA model. */
export async function evalByCondition(
  model: RowConditionModel,
  data: ConditionDataSets,
  batchSize: number,
  padId: number,
): Promise<{ name: string; loss: number; perplexity?: number }[]> {
  const { evaluate } = await import('../training/evaluate.js');
  const out: { name: string; loss: number; perplexity?: number }[] = [];
  for (const [k, name] of data.names.entries()) {
    const r = await evaluate(model, data.evalByCondition[k]!, 'causal_lm', 'causal_lm', batchSize, padId);
    out.push({ name, loss: r.loss, perplexity: r.perplexity });
  }
  return out;
}
