/**
 * `PeftModel` and `getPeftModel` (PEFT peft_model.py; docs/design.md "Public API"): a model plus a
 * tuner, with PEFT's names in camelCase. The tuner is the child `base_model` and the wrapped model its child
 * `model`, so parameter names are PEFT's `base_model.model.<path>`. Adapter files: PEFT
 * utils/save_and_load.py.
 *
 * The tuner class comes from the registry (`registry.ts`) by `config.peftType`; PeftModel imports no
 * tuner. `trainableParameters()` (from Module) lists `[name, Variable]` with PEFT names
 * (`base_model.model.…lora_A.default.weight`). Methods only some tuners have (`updateAndAllocate`,
 * AdaLoRA) are delegated when present.
 *
 * @example
 * const peft = getPeftModel(model, new LoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'] }));
 * peft.printTrainableParameters();
 * await peft.savePretrained('out/adapter');
 * const again = await PeftModel.fromPretrained(freshModel, 'out/adapter');
 */
import type { Tensor } from '../tensor/tf.js';
import { Module } from '../nn/module.js';
import { memoryByCategory, memoryRows, type MemoryByCategory } from '../nn/memory_report.js';
import { Linear4bit } from '../nn/linear4bit.js';
import type { ModelInputs, ModelOutput } from '../models/base.js';
import { ConfigError } from '../errors.js';
import { disposeAll } from '../tensor/memory.js';
import type { PeftConfig } from './base/config.js';
import { adapterConfigText, configForSave } from './base/save_config.js';
import type { BaseTuner, TunerConfig } from './base/tuner.js';
import type { MergeOptions } from './base/layer.js';
import { adapterDir, readAdapterWeights, writeAdapterFolder } from './base/adapter_files.js';
import { readConfig } from './adapter_config.js';
import { getTuner } from './registry.js';

/** Options of {@link PeftModel.fromPretrained} and {@link PeftModel.loadAdapter}. */
export interface LoadAdapterOptions {
  adapterName?: string;
  /** Load for further training (default false: inference mode, adapter frozen). */
  isTrainable?: boolean;
}

/** Options of {@link PeftModel.savePretrained}. */
export interface SavePretrainedOptions {
  /** Adapters to save (default: all). */
  selectedAdapters?: string[];
}

/** PEFT adds the classification heads to `modules_to_save` for SEQ_CLS (peft_model.py 1793-1799); without duplicates here. */
const SEQ_CLS_HEADS = ['classifier', 'score'];

function prepareConfig(config: PeftConfig): void {
  const c = config as PeftConfig & { modulesToSave?: string[] | null };
  if (config.taskType === 'SEQ_CLS' && 'modulesToSave' in c) {
    const list = [...(c.modulesToSave ?? [])];
    for (const h of SEQ_CLS_HEADS) if (!list.includes(h)) list.push(h);
    c.modulesToSave = list;
  }
}

export class PeftModel extends Module {
  declare base_model: BaseTuner<TunerConfig>;

  /** Wraps `model` with a new adapter (see {@link getPeftModel}). */
  constructor(model: Module, config: PeftConfig, adapterName = 'default') {
    super();
    const entry = getTuner(config.peftType);
    const peftType = config.peftType;
    const className = config.constructor.name;
    if (!(config instanceof entry.configClass)) {
      throw new ConfigError(
        'getPeftModel',
        `config is not a ${entry.configClass.name} although its peftType is ${peftType}`,
        className,
        `build it with new ${entry.configClass.name}(...)`,
      );
    }
    prepareConfig(config);
    this.registerModule('base_model', new entry.modelClass(model));
    this.base_model.addAdapter(adapterName, config as TunerConfig);
  }

  /** The wrapped model (PEFT `get_base_model()`). */
  getBaseModel(): Module {
    return this.base_model.model;
  }

  /** Config per adapter name. */
  get peftConfig(): Map<string, TunerConfig> {
    return this.base_model.peftConfig;
  }

  get activeAdapters(): string[] {
    return [...this.base_model.activeAdapters];
  }

  get activeAdapter(): string {
    return this.base_model.activeAdapter;
  }

  /** Runs the model with the active adapters. */
  forward(inputs: ModelInputs): ModelOutput {
    return this.base_model.forward(inputs);
  }

  /**
   * PEFT `get_nb_trainable_parameters`: counts over `named_parameters()` (tied tensors once), with
   * 4-bit weights counted at their logical size as PEFT does.
   */
  getNbTrainableParameters(): { trainable: number; all: number } {
    let trainable = 0;
    let all = 0;
    for (const [, p] of this.namedParameters()) {
      all += p.size;
      if (p.trainable) trainable += p.size;
    }
    // A 4-bit weight is packed codes, not a Variable; PEFT counts a bnb Params4bit as numel·2 = out·in.
    for (const [, m] of this.namedModules()) if (m instanceof Linear4bit) all += m.inFeatures * m.outFeatures;
    return { trainable, all };
  }

  /** PEFT's line, e.g. `trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364`. */
  trainableParametersSummary(): string {
    const { trainable, all } = this.getNbTrainableParameters();
    const pct = all === 0 ? 0 : (100 * trainable) / all;
    return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${pct.toFixed(4)}`;
  }

  /**
   * Prints {@link trainableParametersSummary} (PEFT `print_trainable_parameters`), then the bytes held
   * by category (lowrank's addition): trainable, frozen dense, frozen 4-bit with its f32-equivalent
   * size and ratio, buffers, total.
   */
  printTrainableParameters(): void {
    console.log(this.trainableParametersSummary());
    console.log(
      `memory: ${memoryRows(this.memoryByCategory())
        .map(([k, v]) => `${k} ${v}`)
        .join(' || ')}`,
    );
  }

  /**
   * Bytes held by the model's tensors by category: trainable, frozen dense, frozen 4-bit (QLoRA) and
   * what those 4-bit weights would take as f32 (nn/linear4bit.ts).
   *
   * @example const m = peft.memoryByCategory(); m.frozenQuantized / m.frozenQuantizedFp32; // ≈ 0.129
   */
  memoryByCategory(): MemoryByCategory {
    return memoryByCategory(this);
  }

  /** Adds another adapter (inactive until `setAdapter`). */
  addAdapter(adapterName: string, config: PeftConfig): void {
    // the first config's type, if any adapter is left (PEFT allows adding again after deleting all)
    const existing = this.peftConfig.values().next().value;
    if (existing !== undefined && config.peftType !== existing.peftType) {
      throw new ConfigError(
        'addAdapter',
        'all adapters of one PeftModel must have the same peftType',
        config.peftType,
        'create a separate PeftModel for another tuner type',
      );
    }
    prepareConfig(config);
    this.base_model.addAdapter(adapterName, config as TunerConfig);
  }

  setAdapter(adapterName: string | string[]): void {
    this.base_model.setAdapter(adapterName);
  }

  deleteAdapter(adapterName: string): void {
    this.base_model.deleteAdapter(adapterName);
  }

  merge(opts: MergeOptions = {}): void {
    this.base_model.merge(opts);
  }

  unmerge(): void {
    this.base_model.unmerge();
  }

  /** Merges the active adapters into the base weights and returns the plain model. */
  mergeAndUnload(opts: MergeOptions = {}): Module {
    return this.base_model.mergeAndUnload(opts);
  }

  /**
   * PEFT `add_weighted_adapter` for LoRA ('linear' | 'cat' | 'svd', tuners/lora/weighted.ts); other
   * tuner types are rejected.
   *
   * @example peft.addWeightedAdapter(['a', 'b'], [1, 1], 'a_plus_b', 'cat'); peft.setAdapter('a_plus_b');
   */
  addWeightedAdapter(
    adapters: string[],
    weights: number[],
    name: string,
    combinationType: 'linear' | 'cat' | 'svd' = 'svd',
    opts: { svdRank?: number } = {},
  ): void {
    this.loraOnly('addWeightedAdapter').addWeightedAdapter(adapters, weights, name, combinationType, opts);
  }

  /**
   * Inference with adapter `adapterNames[i]` on batch row i (`'__base__'`: no adapter), PEFT's
   * `adapter_names` (tuners/lora/mixed_batch.ts).
   *
   * @example peft.eval(); peft.forwardMixed({ inputIds }, ['task_a', '__base__', 'task_b']);
   */
  forwardMixed(inputs: ModelInputs, adapterNames: string[]): ModelOutput {
    return this.loraOnly('forwardMixed').forwardMixed(inputs, adapterNames);
  }

  private loraOnly(what: string): {
    addWeightedAdapter(
      a: string[],
      w: number[],
      n: string,
      c: 'linear' | 'cat' | 'svd',
      o: { svdRank?: number },
    ): void;
    forwardMixed(inputs: ModelInputs, adapterNames: string[]): ModelOutput;
  } {
    const t = this.base_model as unknown as Record<string, unknown>;
    if (typeof t.addWeightedAdapter !== 'function' || typeof t.forwardMixed !== 'function') {
      throw new ConfigError(
        `PeftModel.${what}`,
        'is available for LoRA adapters only',
        this.base_model.constructor.name,
        'use a LoraConfig',
      );
    }
    return t as unknown as ReturnType<PeftModel['loraOnly']>;
  }

  /** Removes the adapters without merging; returns the original model. */
  unload(): Module {
    return this.base_model.mergeAndUnload({ merge: false });
  }

  /**
   * Runs `fn` with every adapter switched off (PEFT `disable_adapter()` context); re-enables after,
   * also when `fn` throws or its promise rejects.
   *
   * @example const baseLogits = peft.withAdapterDisabled(() => peft.forward(inputs).logits);
   */
  withAdapterDisabled<T>(fn: () => T): T {
    this.base_model.enableAdapterLayers(false);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.base_model.enableAdapterLayers(true);
      throw e;
    }
    if (result instanceof Promise) {
      return result.finally(() => this.base_model.enableAdapterLayers(true)) as T;
    }
    this.base_model.enableAdapterLayers(true);
    return result;
  }

  /**
   * AdaLoRA's rank allocation step (PEFT adalora/model.py `update_and_allocate`); call once per optimizer
   * step after the update. Only tuners that implement it (AdaLoRA) accept it.
   */
  updateAndAllocate(globalStep: number, grads?: Map<string, Tensor>): void {
    this.allocating(globalStep).updateAndAllocate(globalStep, grads);
  }

  /**
   * {@link updateAndAllocate} reading tensors asynchronously (required on WebGPU/WebGL).
   * @example await peft.updateAndAllocateAsync(step, grads);
   */
  async updateAndAllocateAsync(globalStep: number, grads?: Map<string, Tensor>): Promise<void> {
    await this.allocating(globalStep).updateAndAllocateAsync(globalStep, grads);
  }

  private allocating(globalStep: number): {
    updateAndAllocate(s: number, g?: Map<string, Tensor>): unknown;
    updateAndAllocateAsync(s: number, g?: Map<string, Tensor>): Promise<unknown>;
  } {
    const t = this.base_model as unknown as {
      updateAndAllocate?: (s: number, g?: Map<string, Tensor>) => unknown;
      updateAndAllocateAsync?: (s: number, g?: Map<string, Tensor>) => Promise<unknown>;
    };
    if (typeof t.updateAndAllocate !== 'function' || typeof t.updateAndAllocateAsync !== 'function') {
      throw new ConfigError(
        'updateAndAllocate',
        `is AdaLoRA's rank allocation step and this model's tuner (${this.base_model.constructor.name}) has none`,
        globalStep,
        'call it only on AdaLoRA models (peftType "ADALORA")',
      );
    }
    return t as {
      updateAndAllocate(s: number, g?: Map<string, Tensor>): unknown;
      updateAndAllocateAsync(s: number, g?: Map<string, Tensor>): Promise<unknown>;
    };
  }

  /** The config as written to disk (PEFT config.py `save_pretrained`; see base/save_config.ts). */
  protected configForSave(adapter: string): PeftConfig {
    return configForSave(this.base_model.requireConfig(adapter), this.getBaseModel());
  }

  /**
   * Writes every (or the selected) adapter as a PEFT folder: `dir` for "default", `dir/<name>` for
   * others; atomic writes.
   */
  async savePretrained(dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
    const names = opts.selectedAdapters ?? [...this.peftConfig.keys()];
    for (const name of names) {
      const tensors = this.base_model.adapterStateDictForSave(name);
      try {
        const where = adapterDir(dir, name);
        const saved = adapterConfigText(this.base_model.requireConfig(name), this.getBaseModel(), where);
        await writeAdapterFolder(where, saved.text, tensors);
      } finally {
        disposeAll(tensors);
      }
    }
  }

  /**
   * Loads a PEFT adapter folder into `model` (PEFT `PeftModel.from_pretrained`).
   * @example const peft = await PeftModel.fromPretrained(model, 'out/adapter', { isTrainable: true });
   */
  static async fromPretrained(model: Module, dir: string, opts: LoadAdapterOptions = {}): Promise<PeftModel> {
    const name = opts.adapterName ?? 'default';
    const config = await readConfig(dir, opts.isTrainable ?? false);
    const weights = await readAdapterWeights(dir);
    try {
      const peft = new PeftModel(model, config, name);
      peft.base_model.loadAdapterStateDict(name, weights);
      if (!(opts.isTrainable ?? false)) peft.eval(); // PEFT: inference loads switch dropout off
      return peft;
    } finally {
      disposeAll(weights);
    }
  }

  /** Loads another adapter folder into this model under `adapterName` (PEFT `load_adapter`). */
  async loadAdapter(
    dir: string,
    adapterName: string,
    opts: Omit<LoadAdapterOptions, 'adapterName'> = {},
  ): Promise<void> {
    const config = await readConfig(dir, opts.isTrainable ?? false);
    const weights = await readAdapterWeights(dir);
    try {
      this.addAdapter(adapterName, config);
      try {
        this.base_model.loadAdapterStateDict(adapterName, weights);
      } catch (e) {
        this.base_model.deleteAdapter(adapterName);
        throw e;
      }
    } finally {
      disposeAll(weights);
    }
  }
}

/**
 * Wraps `model` with a new adapter described by `config` (PEFT `get_peft_model`).
 * @example const peft = getPeftModel(model, new LoraConfig({ targetModules: ['query', 'value'] }));
 */
export function getPeftModel(model: Module, config: PeftConfig, adapterName = 'default'): PeftModel {
  return new PeftModel(model, config, adapterName);
}
