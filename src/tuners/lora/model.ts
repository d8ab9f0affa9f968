/**
 * `LoraModel` (PEFT lora/model.py): injects `LoraLinear`/`LoraEmbedding` into the target modules,
 * resolving per-module rank and alpha from `rankPattern`/`alphaPattern` (PEFT lora/model.py
 * `_create_and_replace`: first key with `re.match(rf"(.*\.)?({key})$", name)` wins) and reconciling
 * `fanInFanOut` with the base layer.
 *
 * EXTENSION POINTS (AdaLoRA: `class AdaLoraModel extends LoraModel`):
 *  - `createNewModule(config, adapter, target, key)`: the layer to put in place of `target`.
 *  - `layerOptions(config, key)`: per-module LoRA options (patterns applied).
 *  - plus everything of `BaseTuner` (forward wrapping, save/load hooks, `checkNewAdapterConfig`).
 *
 * @example
 * const tuner = new LoraModel(model);
 * tuner.addAdapter('default', new LoraConfig({ r: 4, targetModules: ['query', 'value'] }));
 */
import type { Module } from '../../nn/module.js';
import { isLinearLike } from '../../nn/linear_like.js';
import { ConfigError } from '../../errors.js';
import { BaseTuner } from '../base/tuner.js';
import { BaseTunerLayer, reconcileFanInFanOut } from '../base/layer.js';
import { pyRegex } from '../base/matching.js';
import { adapterKeyMap, type AdapterKeyMap } from '../base/state_dict.js';
import { loftqOptions, type LoraConfig } from './config.js';
import { LoraLayer, LoraLinear, type LoraLayerOptions } from './layer.js';
import { LoraEmbedding, isEmbeddingLike } from './embedding.js';
import { addWeightedAdapter, type CombinationType, type WeightedAdapterOptions } from './weighted.js';
import { mixedBatchForward } from './mixed_batch.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';

/**
 * PEFT `get_pattern_key`: the first pattern key (in insertion order) matching the module name as
 * `(.*\.)?(key)$` from the start, or null.
 *
 * @example patternKeyFor(['v_proj', 'layers.1.q_proj'], 'model.layers.1.q_proj'); // 'layers.1.q_proj'
 */
export function patternKeyFor(keys: readonly string[], moduleName: string): string | null {
  for (const k of keys)
    if (pyRegex(`(.*\\.)?(${k})$`, 'start', 'rankPattern/alphaPattern').test(moduleName)) return k;
  return null;
}

/** DoRA's magnitude is a module with `.weight`; PEFT saves it without (lora/model.py 988-1023). */
function renameMagnitude(saved: string): string {
  return saved.includes('lora_magnitude_vector') && saved.endsWith('.weight')
    ? saved.slice(0, -'.weight'.length)
    : saved;
}

export class LoraModel<C extends LoraConfig = LoraConfig> extends BaseTuner<C> {
  readonly prefix: string = 'lora_';

  /** PEFT: only one adapter may train biases (bias ≠ "none"). */
  protected override checkNewAdapterConfig(config: C, adapter: string): void {
    const withBias = [...this.peftConfig.entries()].filter(([, c]) => c.bias !== 'none');
    if (config.bias !== 'none' && withBias.length > 0) {
      throw new ConfigError(
        `${config.constructor.name}.bias`,
        `only one adapter may train biases, and "${withBias[0]![0]}" already does`,
        config.bias,
        `set bias: "none" for adapter "${adapter}"`,
      );
    }
  }

  /** LoRA options for one module: rank/alpha patterns resolved (PEFT lora/model.py). */
  protected layerOptions(config: C, key: string): LoraLayerOptions {
    const rKey = patternKeyFor(Object.keys(config.rankPattern ?? {}), key);
    const aKey = patternKeyFor(Object.keys(config.alphaPattern ?? {}), key);
    return {
      r: rKey !== null ? config.rankPattern[rKey]! : config.r,
      loraAlpha: aKey !== null ? config.alphaPattern[aKey]! : config.loraAlpha,
      loraDropout: config.loraDropout,
      initLoraWeights: config.initLoraWeights,
      ...(config.initLoraWeights === 'loftq' ? { loftq: loftqOptions(config.loftqConfig) } : {}),
      useRslora: config.useRslora,
      useDora: config.useDora,
      loraBias: config.loraBias,
    };
  }

  protected override createAndReplace(config: C, adapter: string, target: Module, key: string): void {
    if (target instanceof LoraLayer) {
      target.updateLayer(adapter, this.layerOptions(config, key));
      return;
    }
    if (target instanceof BaseTunerLayer) {
      throw new ConfigError(
        `${config.constructor.name}.targetModules`,
        `module "${key}" already holds a different kind of adapter (${target.constructor.name})`,
        key,
        'use one tuner type per model, or exclude this module',
      );
    }
    this.model.replaceChild(key, this.createNewModule(config, adapter, target, key));
  }

  /** The LoRA layer for a base module (PEFT `_create_new_module`). */
  protected createNewModule(config: C, adapter: string, target: Module, key: string): BaseTunerLayer {
    const opts = this.layerOptions(config, key);
    if (isLinearLike(target)) {
      // PEFT warns and mutates the shared config, so the saved adapter_config.json says what was used.
      config.fanInFanOut = reconcileFanInFanOut(config.fanInFanOut, target, key);
      return new LoraLinear(target, adapter, opts);
    }
    if (isEmbeddingLike(target)) return new LoraEmbedding(target, adapter, opts);
    throw new ConfigError(
      `${config.constructor.name}.targetModules`,
      `module "${key}" (${target.constructor.name}) cannot take a LoRA adapter: only linear and embedding layers can`,
      key,
      'target linear/embedding modules only (e.g. by their leaf names), or add it to excludeModules',
    );
  }

  override adapterKeyMap(adapter: string): AdapterKeyMap {
    const cfg = this.requireConfig(adapter);
    return adapterKeyMap(this.model, adapter, { bias: cfg.bias, renameSaved: renameMagnitude });
  }

  /** PEFT `set_scale` on every layer of an adapter. */
  setScale(adapter: string, scale: number): void {
    for (const [, l] of this.tunerLayers()) if (l instanceof LoraLayer) l.setScale(adapter, scale);
  }

  /** PEFT `add_weighted_adapter`: a new adapter from weighted existing ones (weighted.ts). */
  addWeightedAdapter(
    adapters: string[],
    weights: number[],
    name: string,
    combinationType: CombinationType = 'svd',
    opts: WeightedAdapterOptions = {},
  ): void {
    addWeightedAdapter(this, adapters, weights, name, combinationType, opts);
  }

  /** Inference with one adapter per batch row (PEFT `adapter_names`; mixed_batch.ts). */
  forwardMixed(inputs: ModelInputs, adapterNames: string[]): ModelOutput {
    return mixedBatchForward(this, inputs, adapterNames);
  }
}
