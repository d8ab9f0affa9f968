/**
 * `BaseTuner`: the model-level machinery shared by every tuner (PEFT `BaseTuner`, tuners_utils.py):
 * adapter injection by `replaceChild` (targets per `matching.ts`), `modulesToSave` wrapping, adapter
 * management (add/set/delete/enable/disable), merging and unloading, trainable-flag bookkeeping, and the
 * adapter state dict for save/load (`state_dict.ts` keys).
 *
 * The wrapped model is the child `model`, so `PeftModel` (which holds the tuner as `base_model`) has
 * PEFT's `base_model.model.<path>` names.
 *
 * EXTENSION POINTS for tuners (LoRA below; AdaLoRA extends `LoraModel`):
 *  - `prefix` ('lora_'), `createAndReplace(...)` (build or update the adapter layer for one target),
 *    `checkNewAdapterConfig(config)` (model-level rules, e.g. AdaLoRA's one-trainable-adapter),
 *    `defaultTargetModules(modelType)`.
 *  - `forward(inputs)`: subclasses may wrap it (AdaLoRA adds its orthogonal regulariser to `loss`).
 *  - `adapterStateDictForSave(adapter)` (AdaLoRA trims by rank pattern) and
 *    `beforeLoadAdapterStateDict(adapter, state)` (AdaLoRA resizes layers), both around the generic
 *    key mapping.
 *  - Hooks run from `addAdapter`, never from the constructor, so subclass field initialisers have run.
 *
 * @example
 * const tuner = new LoraModel(model);
 * tuner.addAdapter('default', new LoraConfig({ targetModules: ['q_proj', 'v_proj'] }));
 * tuner.forward({ inputIds });
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { isLinearLike } from '../../nn/linear_like.js';
import { PreTrainedModel, type ModelInputs, type ModelOutput } from '../../models/base.js';
import { ConfigError } from '../../errors.js';
import type { PeftConfig } from './config.js';
import { BaseTunerLayer, type MergeOptions } from './layer.js';
import { matchTarget, resolveTargetModules, type TargetSpec } from './matching.js';
import { ModulesToSaveWrapper } from './modules_to_save.js';
import { adapterKeyMap, savedToModelKeys, type AdapterKeyMap } from './state_dict.js';
import { tunerWarn } from './warnings.js';

/** A config a tuner can inject: PEFT base fields plus target selection and bias. */
export type TunerConfig = PeftConfig & TargetSpec & { bias: 'none' | 'all' | 'lora_only' };

/** No module matched the target spec (PEFT `NoMatchingPeftModuleError`, clearer). */
export class NoMatchingTargetError extends ConfigError {}

export abstract class BaseTuner<C extends TunerConfig = TunerConfig> extends Module {
  declare model: Module;
  /** Config per adapter name (PEFT `peft_config`). */
  readonly peftConfig = new Map<string, C>();
  /** Active adapters, in order (PEFT `active_adapters`). */
  activeAdapters: string[] = [];
  /** Substring of adapter tensor names (PEFT `prefix`). */
  abstract readonly prefix: string;

  constructor(model: Module) {
    super();
    this.registerModule('model', model);
  }

  /** Builds or updates the adapter layer for one target module. */
  protected abstract createAndReplace(config: C, adapter: string, target: Module, key: string): void;

  /** Model-level checks before a new adapter is added. */
  protected checkNewAdapterConfig(config: C, adapter: string): void {
    void config;
    void adapter;
  }

  /** The first active adapter (PEFT `active_adapter`). */
  get activeAdapter(): string {
    return this.activeAdapters[0]!;
  }

  /** Runs the wrapped model (subclasses may add terms to the loss). */
  forward(inputs: ModelInputs): ModelOutput {
    return (this.model as PreTrainedModel).forward(inputs);
  }

  /** `[path, layer]` of every adapter layer in the wrapped model. */
  tunerLayers(): [string, BaseTunerLayer][] {
    return this.model
      .namedModules()
      .filter((e): e is [string, BaseTunerLayer] => e[1] instanceof BaseTunerLayer);
  }

  /** `[path, wrapper]` of every modulesToSave wrapper. */
  wrappers(): [string, ModulesToSaveWrapper][] {
    return this.model
      .namedModules()
      .filter((e): e is [string, ModulesToSaveWrapper] => e[1] instanceof ModulesToSaveWrapper);
  }

  /**
   * Adds an adapter: checks, target resolution, injection, modulesToSave, trainable flags. The first
   * adapter becomes active; later ones are added inactive (PEFT `add_adapter`).
   */
  addAdapter(adapter: string, config: C): void {
    if (this.peftConfig.has(adapter)) {
      throw new ConfigError(
        'addAdapter',
        'an adapter with this name exists',
        adapter,
        'pick another name or deleteAdapter() first',
      );
    }
    if (adapter.includes('.') || adapter === '') {
      throw new ConfigError(
        'addAdapter',
        'adapter names must be non-empty and contain no "."',
        adapter,
        'use e.g. "default" or "task_b"',
      );
    }
    this.checkNewAdapterConfig(config, adapter);
    this.peftConfig.set(adapter, config);
    const first = this.activeAdapters.length === 0;
    if (first) this.activeAdapters = [adapter];
    try {
      this.injectAdapter(adapter, config);
    } catch (e) {
      this.peftConfig.delete(adapter);
      if (first) this.activeAdapters = [];
      throw e;
    }
    this.setAdapter(this.activeAdapters);
  }

  /** Linear-like module paths (for `all-linear`). */
  protected linearModuleNames(): string[] {
    return this.model
      .namedModules()
      .filter(([k, m]) => k !== '' && isLinearLike(m) && !this.insideAdapterMachinery(k))
      .map(([k]) => k);
  }

  /** Architecture defaults when `targetModules` is null; the AdaLoRA table may differ. */
  protected defaultModelType(): string | undefined {
    return this.model instanceof PreTrainedModel ? this.model.modelType : undefined;
  }

  /** True if `key` is inside an adapter layer or a modulesToSave wrapper (never a target itself). */
  protected insideAdapterMachinery(key: string): boolean {
    const parts = key.split('.');
    let m: Module = this.model;
    for (let i = 0; i < parts.length - 1; i++) {
      m = m.getSubmodule(parts[i]!);
      if (m instanceof BaseTunerLayer || m instanceof ModulesToSaveWrapper) return true;
    }
    return false;
  }

  /** PEFT `inject_adapter` (tuners_utils.py, target matching). */
  protected injectAdapter(adapter: string, config: C): void {
    const outputs = this.model instanceof PreTrainedModel ? this.model.outputModuleNames() : null;
    config.targetModules = resolveTargetModules(
      config.targetModules,
      this.defaultModelType(),
      this.linearModuleNames(),
      outputs,
    );
    const keys = this.model.namedModules().map(([k]) => k);
    let matched = 0;
    let excluded = 0;
    for (const key of keys) {
      if (key === '' || this.insideAdapterMachinery(key)) continue;
      const r = matchTarget(config, key);
      if (r === 'excluded') excluded++;
      if (r !== 'target') continue;
      matched++;
      const target = this.model.getSubmodule(key);
      this.createAndReplace(config, adapter, target, key);
      // New adapter parts (dropout) follow the train/eval mode of the module they wrap.
      this.model.getSubmodule(key).train(target.training);
    }
    if (matched === 0) {
      throw new NoMatchingTargetError(
        `${config.constructor.name}.targetModules`,
        `matched no module of the model${excluded ? ` (${excluded} excluded by excludeModules/modulesToSave)` : ''}`,
        config.targetModules,
        `name modules that exist, e.g. some of: ${sampleLeafNames(keys)}`,
      );
    }
    this.wrapModulesToSave(adapter, config, keys);
  }

  /** Wraps every module whose key ends with a `modulesToSave` entry (PEFT `_set_trainable`). */
  protected wrapModulesToSave(adapter: string, config: C, keys: string[]): void {
    const names = config.modulesToSave;
    if (!names || names.length === 0) return;
    for (const key of keys) {
      if (key === '' || !names.some((n) => key.endsWith(n))) continue;
      const parts = key.split('.');
      if (
        parts
          .slice(0, -1)
          .some(
            (_, i) =>
              this.model.getSubmodule(parts.slice(0, i + 1).join('.')) instanceof ModulesToSaveWrapper,
          )
      )
        continue;
      const target = this.model.getSubmodule(key);
      if (target instanceof ModulesToSaveWrapper) target.update(adapter);
      else if (!(target instanceof BaseTunerLayer))
        this.model.replaceChild(key, new ModulesToSaveWrapper(target, adapter).train(target.training));
    }
  }

  /**
   * Makes `names` active and recomputes every trainable flag: only active, non-inference adapters
   * (their layers, their modulesToSave copies, and biases per `bias`) train (PEFT `set_adapter` +
   * `_mark_only_adapters_as_trainable`).
   */
  setAdapter(names: string | string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const n of list) {
      if (!this.peftConfig.has(n))
        throw new ConfigError(
          'setAdapter',
          'unknown adapter',
          n,
          `use one of ${JSON.stringify([...this.peftConfig.keys()])}`,
        );
    }
    this.activeAdapters = list;
    for (const [, l] of this.tunerLayers()) l.setAdapter(list);
    for (const [, w] of this.wrappers()) w.setAdapter(list[0]!);
    this.refreshTrainable();
  }

  /** Recomputes `trainable` on every parameter from the active adapters and their configs. */
  protected refreshTrainable(): void {
    for (const [, p] of this.model.namedParameters()) p.trainable = false;
    const layers = this.tunerLayers();
    const disabled = layers.some(([, l]) => l.disableAdapters);
    if (disabled) return;
    for (const a of this.activeAdapters) {
      const cfg = this.peftConfig.get(a)!;
      if (cfg.inferenceMode) continue;
      for (const [, l] of layers) for (const [, p] of l.adapterParameters(a)) p.trainable = true;
      for (const [, w] of this.wrappers()) w.modules_to_save.get(a)?.requiresGrad(true);
      if (cfg.bias === 'all') {
        for (const [n, p] of this.model.namedParameters())
          if (n === 'bias' || n.endsWith('.bias')) p.trainable = !n.includes('.original_module.');
      } else if (cfg.bias === 'lora_only') {
        for (const [, l] of layers) {
          const b = l.getBaseLayer().getParameter('bias');
          if (b && l.adapterNames().includes(a)) b.trainable = true;
        }
      }
    }
  }

  /** Switches all adapter layers (and modulesToSave copies) on or off. */
  enableAdapterLayers(enabled: boolean): void {
    for (const [, l] of this.tunerLayers()) l.enableAdapters(enabled);
    for (const [, w] of this.wrappers()) w.enableAdapters(enabled);
    if (enabled) this.setAdapter(this.activeAdapters);
    else this.refreshTrainable();
  }

  /** Removes an adapter everywhere; another one becomes active if it was. */
  deleteAdapter(adapter: string): void {
    if (!this.peftConfig.has(adapter))
      throw new ConfigError(
        'deleteAdapter',
        'unknown adapter',
        adapter,
        `use one of ${JSON.stringify([...this.peftConfig.keys()])}`,
      );
    for (const [, l] of this.tunerLayers()) l.deleteAdapter(adapter);
    for (const [, w] of this.wrappers()) w.deleteAdapter(adapter);
    this.peftConfig.delete(adapter);
    const next = this.activeAdapters.filter((a) => a !== adapter);
    if (next.length === 0 && this.peftConfig.size > 0) next.push([...this.peftConfig.keys()][0]!);
    this.activeAdapters = next;
    if (next.length > 0) this.setAdapter(next);
  }

  /** Merges the listed (default: active) adapters into the base weights. */
  merge(opts: MergeOptions = {}): void {
    // All or nothing: if a layer refuses (safe merge found NaN), layers merged by this call are undone.
    const done: [BaseTunerLayer, string[]][] = [];
    try {
      for (const [, l] of this.tunerLayers()) {
        const before = [...l.mergedAdapters];
        l.merge(opts);
        done.push([l, before]);
      }
    } catch (e) {
      for (const [l, before] of done.reverse()) {
        if (l.merged) l.unmerge();
        if (before.length > 0) l.merge({ adapterNames: before });
      }
      throw e;
    }
  }

  /** Undoes every merge. */
  unmerge(): void {
    const layers = this.tunerLayers();
    if (!layers.some(([, l]) => l.merged)) {
      tunerWarn('Already unmerged. Nothing to do.'); // PEFT's warning, once per model instead of per layer
      return;
    }
    for (const [, l] of layers) if (l.merged) l.unmerge();
  }

  /**
   * Merges (unless `merge: false`) and removes the adapter machinery: each adapter layer is replaced by
   * its base layer, each modulesToSave wrapper by the active copy. Returns the plain model; the tuner
   * must not be used afterwards. Adapter tensors are disposed.
   */
  mergeAndUnload(opts: MergeOptions & { merge?: boolean } = {}): Module {
    if (opts.merge ?? true) this.merge(opts);
    for (const [path, l] of this.tunerLayers().reverse()) {
      const base = l.base_layer;
      this.model.replaceChild(path, base);
      for (const [name, child] of l.namedChildren()) if (name !== 'base_layer') child.dispose();
    }
    for (const [path, w] of this.wrappers()) {
      const keep = w.activeModule();
      this.model.replaceChild(path, keep);
      if (w.original_module !== keep) w.original_module.dispose();
      for (const k of w.modules_to_save.keys())
        if (w.modules_to_save.get(k) !== keep) w.modules_to_save.get(k)!.dispose();
    }
    return this.model;
  }

  /** Key pairs of one adapter (model key relative to `model`, saved key). Tuners may rename. */
  adapterKeyMap(adapter: string): AdapterKeyMap {
    const cfg = this.requireConfig(adapter);
    return adapterKeyMap(this.model, adapter, { bias: cfg.bias });
  }

  /**
   * The tensors to save for `adapter` under their PEFT keys. The caller owns (disposes) the returned
   * tensors. AdaLoRA overrides to trim by its rank pattern (PEFT adalora/model.py).
   */
  adapterStateDictForSave(adapter: string): Map<string, Tensor> {
    const state = this.model.stateDict();
    const out = new Map<string, Tensor>();
    for (const [modelKey, saved] of this.adapterKeyMap(adapter))
      out.set(saved, tf.clone(state.get(modelKey)!));
    return out;
  }

  /** Hook before loading saved tensors (AdaLoRA resizes layers to the rank pattern). */
  protected beforeLoadAdapterStateDict(adapter: string, state: Map<string, Tensor>): void {
    void adapter;
    void state;
  }

  /**
   * Copies saved tensors (PEFT keys) into `adapter`. Every adapter tensor must be present and no
   * unknown key may appear; shapes must match. The caller keeps ownership of `state`.
   */
  loadAdapterStateDict(adapter: string, state: Map<string, Tensor>): void {
    this.beforeLoadAdapterStateDict(adapter, state);
    const remapped = savedToModelKeys(adapter, this.adapterKeyMap(adapter), state, this.model.stateDict());
    this.model.loadStateDict(remapped, false);
  }

  /** The config of an adapter, or a clear error. */
  requireConfig(adapter: string): C {
    const c = this.peftConfig.get(adapter);
    if (!c)
      throw new ConfigError(
        'adapter',
        'unknown adapter',
        adapter,
        `use one of ${JSON.stringify([...this.peftConfig.keys()])}`,
      );
    return c;
  }
}

function sampleLeafNames(keys: string[]): string {
  const leaves = [...new Set(keys.filter(Boolean).map((k) => k.slice(k.lastIndexOf('.') + 1)))].filter(
    (k) => !/^\d+$/.test(k),
  );
  return leaves.slice(0, 12).join(', ');
}
