/**
 * HyperLoRA jobs (docs/hyperlora.md): one hypernetwork trained on several causal-LM text sets at once,
 * each set a named condition (`lowrank train --method hyperlora --conditions a=a.txt,b=b.txt`), and
 * the inference side (`eval` / `generate` / `materialize --condition <name>`) that pins a saved
 * hypernetwork to one condition as a plain LoRA.
 *
 * How the condition of each row reaches the model: every example carries its set's index in
 * `Example.condition`; the collator batches it as `ModelInputs.condition` (int32 [B]) and
 * `HyperLoraModel.forward` gathers the condition embeddings from it on the device. So the Trainer,
 * `evaluate`, checkpoints and resume handle HyperLoRA like any other model, and a batch mixes
 * conditions as the shuffled loader draws them.
 */
import { ConfigError, DataError } from '../errors.js';
import { joinPath, pathExists } from '../io/source.js';
import { PreTrainedModel } from '../models/base.js';
import type { Module } from '../nn/module.js';
import type { Example } from '../training/data/dataset.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import { evaluate } from '../training/evaluate.js';
import { DEFAULT_TARGET_MODULES } from '../tuners/base/matching.js';
import { HyperLoraConfig } from '../tuners/hyperlora/config.js';
import { HYPER_CONFIG_NAME, HyperLoraModel } from '../tuners/hyperlora/model.js';
import { hyperToLora } from '../tuners/hyperlora/to_lora.js';
import type { PeftModel } from '../tuners/peft_model.js';
import { loadDataSets, type DataOptions, type DataSets } from './data.js';

/** One named training set of a HyperLoRA job: its name becomes the condition's name. */
export interface ConditionSet {
  name: string;
  path: string;
}

/**
 * Parses `name=path` entries (two or more, distinct names) into condition sets.
 * @example parseConditions(['a=x.txt', 'b=y.txt']); // [{ name: 'a', path: 'x.txt' }, …]
 */
export function parseConditions(list: readonly string[] | undefined): ConditionSet[] {
  const bad = (rule: string, got: unknown, fix: string) => new ConfigError('conditions', rule, got, fix);
  if (!list || list.length === 0)
    throw bad(
      'HyperLoRA needs at least two training sets',
      undefined,
      'give them as name=path,name=path (they replace a single data file)',
    );
  const sets = list.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1)
      throw bad('each entry must be name=path', item, 'e.g. shakespeare=input.txt');
    return { name: item.slice(0, eq).trim(), path: item.slice(eq + 1).trim() };
  });
  const names = sets.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw bad('a condition name appears twice', dup, 'give each set its own name');
  if (sets.length < 2)
    throw bad(
      'one condition is plain LoRA: HyperLoRA needs two or more name=path sets',
      sets.length,
      'add a set, or train LoRA on the one file',
    );
  return sets;
}

/**
 * Sets every example's condition to `condition` (copies; the inputs are not changed).
 * @example withCondition(trainSet, 1)[0].condition; // 1
 */
export function withCondition(examples: readonly Example[], condition: number): Example[] {
  return examples.map((e) => ({ ...e, condition }));
}

export interface ConditionDataSets extends DataSets {
  names: string[];
  /** Each condition's held-out examples (with their condition), in `names` order. */
  evalByCondition: Example[][];
}

/**
 * Loads every condition's text set like a single data set (same tokenizer, `maxLength`, `evalFraction`
 * split) and merges them into one train set and one eval set whose examples carry their condition.
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
    train.push(...withCondition(d.train, k));
    evalByCondition.push(withCondition(d.eval, k));
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

export interface HyperTrainOptions {
  r: number;
  loraAlpha?: number;
  loraDropout: number;
  /** Leaf names, or one regex (PEFT's `target_modules`); default: the architecture's LoRA targets. */
  targetModules?: string[] | string;
  excludeModules?: string[] | string;
  layersToTransform?: number[];
  layersPattern?: string[] | string;
  hiddenDim?: number;
  embeddingDim?: number;
  names: string[];
}

/**
 * Wraps `base` with a fresh hypernetwork for the named conditions (targets default as LoRA's).
 * @example const hyper = buildHyperLora(base, { r: 4, loraDropout: 0, names: ['a', 'b'] });
 */
export function buildHyperLora(base: Module, o: HyperTrainOptions): HyperLoraModel {
  const modelType = base instanceof PreTrainedModel ? base.modelType : '';
  const targets = o.targetModules ?? DEFAULT_TARGET_MODULES[modelType];
  if (!targets)
    throw new ConfigError(
      'HyperLoraConfig.targetModules',
      `has no default for model type "${modelType}"`,
      undefined,
      'list the modules to adapt',
    );
  const config = new HyperLoraConfig({
    targetModules: typeof targets === 'string' ? targets : [...targets],
    r: o.r,
    loraAlpha: o.loraAlpha ?? 2 * o.r,
    loraDropout: o.loraDropout,
    numConditions: o.names.length,
    conditionNames: o.names,
    ...(o.excludeModules !== undefined ? { excludeModules: o.excludeModules } : {}),
    ...(o.layersToTransform !== undefined ? { layersToTransform: o.layersToTransform } : {}),
    ...(o.layersPattern !== undefined ? { layersPattern: o.layersPattern } : {}),
    ...(o.hiddenDim !== undefined ? { hiddenDim: o.hiddenDim } : {}),
    ...(o.embeddingDim !== undefined ? { embeddingDim: o.embeddingDim } : {}),
  });
  return new HyperLoraModel(base, config);
}

/**
 * Per-condition held-out loss (and perplexity) of a trained HyperLoRA model.
 * @example await evalByCondition(hyper, data, 16, tok.padTokenId); // [{ name: 'a', loss: 3.1, … }, …]
 */
export async function evalByCondition(
  model: HyperLoraModel,
  data: ConditionDataSets,
  batchSize: number,
  padId: number,
): Promise<{ name: string; loss: number; perplexity?: number }[]> {
  const out: { name: string; loss: number; perplexity?: number }[] = [];
  for (const [k, name] of data.names.entries()) {
    const r = await evaluate(model, data.evalByCondition[k]!, 'causal_lm', 'causal_lm', batchSize, padId);
    out.push({ name, loss: r.loss, perplexity: r.perplexity });
  }
  return out;
}

/**
 * Whether `dir` holds a saved hypernetwork (rather than a PEFT adapter).
 * @example if (await isHyperLoraFolder('runs/hyper/adapter')) { … }
 */
export function isHyperLoraFolder(dir: string): Promise<boolean> {
  return pathExists(joinPath(dir, HYPER_CONFIG_NAME));
}

/**
 * Loads the hypernetwork in `dir` onto `base` and pins it to `condition` (a name or an id) as a plain
 * LoRA; a missing or unknown condition is a `ConfigError` on the field `condition` naming the choices.
 * @example const { peft } = await loadHyperAsLora(base, 'runs/hyper/adapter', 'shakespeare');
 */
export async function loadHyperAsLora(
  base: Module,
  dir: string,
  condition: string | undefined,
): Promise<{ peft: PeftModel; condition: number; names: string[] | undefined }> {
  const hyper = await HyperLoraModel.fromPretrained(base, dir);
  const names = hyper.config.conditionNames;
  let id: number;
  try {
    if (condition === undefined || condition === '')
      throw new ConfigError(
        'condition',
        `is required: ${dir} is a HyperLoRA hypernetwork`,
        undefined,
        `pick one of ${names ? names.join(', ') : `the ids 0…${hyper.config.numConditions - 1}`} (materialize exports one as a PEFT LoRA folder)`,
      );
    id = hyper.config.conditionId(condition);
  } catch (e) {
    hyper.dispose();
    throw e;
  }
  return { peft: hyperToLora(hyper, id), condition: id, names };
}
