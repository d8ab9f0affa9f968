/**
 * `BaseTunerLayer`: the contract every adapter layer meets (PEFT `BaseTunerLayer`, tuners_utils.py).
 * It wraps the original module as the child `base_layer` (state-dict keys `q_proj.base_layer.weight`,
 * PEFT-SPEC §5.1) and keeps per-adapter tensors in dict-like children named in `adapterLayerNames`
 * (`lora_A.default.weight`, `lora_E.default`). The tuner model drives it through this interface only.
 *
 * EXTENSION POINT — a new adapter layer (LoRA's Linear/Embedding, AdaLoRA's SVD layer) subclasses this
 * and implements `forward`, `merge`, `unmerge`, `getDeltaWeight`, and lists its dict children in
 * `adapterLayerNames` (+ per-adapter scalars in `otherParamNames` if it keeps Maps keyed by adapter).
 *
 * @example
 * for (const [, m] of model.namedModules()) if (m instanceof BaseTunerLayer) m.setAdapter(['default']);
 */
import type { Tensor, Variable } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { ConfigError } from '../../errors.js';
import { tunerWarn } from './warnings.js';

/** Options of `merge`. */
export interface MergeOptions {
  /** Compute the merged weight on a copy and refuse it if it holds NaN/Inf (PEFT `safe_merge`). */
  safeMerge?: boolean;
  /** Adapters to merge (default: the active ones). */
  adapterNames?: string[];
}

/** Anything dict-like holding one entry per adapter (`ModuleDict`, `ParameterDict`). */
interface AdapterDict extends Module {
  has(key: string): boolean;
  delete(key: string): void;
  keys(): string[];
}

export abstract class BaseTunerLayer extends Module {
  declare base_layer: Module;
  /** Names of the children holding trainable per-adapter tensors (PEFT `adapter_layer_names`). */
  abstract readonly adapterLayerNames: readonly string[];
  /** Names of per-adapter `Map`s on this object (PEFT `other_param_names`: r, alpha, scaling, …). */
  readonly otherParamNames: readonly string[] = [];

  /** Adapters used by `forward` (PEFT `active_adapters`). */
  activeAdapterNames: string[] = ['default'];
  /** True while adapters are switched off (`withAdapterDisabled`). */
  disableAdapters = false;
  /** Adapters merged into the base weight, in merge order. */
  mergedAdapters: string[] = [];

  constructor(baseLayer: Module) {
    super();
    this.registerModule('base_layer', baseLayer);
  }

  abstract forward(x: Tensor): Tensor;
  /** Adds the listed (default: active) adapters' deltas into the base weight. */
  abstract merge(opts?: MergeOptions): void;
  /** Subtracts every merged adapter, last merged first. */
  abstract unmerge(): void;
  /** The adapter's weight delta in the base weight's storage layout. Caller disposes. */
  abstract getDeltaWeight(adapter: string): Tensor;

  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  /** The innermost wrapped module (unwraps nested tuner layers). */
  getBaseLayer(): Module {
    let m: Module = this.base_layer;
    while (m instanceof BaseTunerLayer) m = m.base_layer;
    return m;
  }

  /** The dict children of this layer that exist. */
  protected adapterDicts(): [string, AdapterDict][] {
    return this.adapterLayerNames
      .filter((n) => this.hasChild(n))
      .map((n) => [n, (this as unknown as Record<string, AdapterDict>)[n]!]);
  }

  /** Adapter names present in this layer. */
  adapterNames(): string[] {
    const names = new Set<string>();
    for (const [, d] of this.adapterDicts()) d.keys().forEach((k) => names.add(k));
    return [...names];
  }

  /** Parameters of one adapter, with names local to this layer (`lora_A.default.weight`). */
  adapterParameters(adapter: string): [string, Variable][] {
    const out: [string, Variable][] = [];
    for (const [name, d] of this.adapterDicts()) {
      if (!d.has(adapter)) continue;
      const sub = (d as unknown as Record<string, Module | Variable>)[adapter];
      if (sub instanceof Module) out.push(...sub.namedParameters(`${name}.${adapter}`));
      else if (sub) out.push([`${name}.${adapter}`, sub]);
    }
    return out;
  }

  /**
   * Makes `names` the active adapters: their tensors become trainable, every other adapter's frozen
   * (PEFT `set_adapter`).
   */
  setAdapter(names: string | string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    for (const a of this.adapterNames()) {
      const on = list.includes(a);
      for (const [, p] of this.adapterParameters(a)) p.trainable = on;
    }
    this.activeAdapterNames = list;
  }

  /** Switches adapters on or off; off also freezes their tensors (PEFT `enable_adapters`). */
  enableAdapters(enabled: boolean): void {
    if (enabled) {
      this.disableAdapters = false;
    } else {
      for (const a of this.adapterNames()) for (const [, p] of this.adapterParameters(a)) p.trainable = false;
      this.disableAdapters = true;
    }
  }

  /** Removes one adapter's tensors and per-adapter values; refuses to delete a merged adapter. */
  deleteAdapter(adapter: string): void {
    if (this.mergedAdapters.includes(adapter)) {
      throw new ConfigError(
        'deleteAdapter',
        'cannot delete an adapter that is merged into the base weights',
        adapter,
        'call unmerge() first',
      );
    }
    for (const [, d] of this.adapterDicts()) if (d.has(adapter)) d.delete(adapter);
    for (const n of this.otherParamNames) {
      const m = (this as unknown as Record<string, unknown>)[n];
      if (m instanceof Map) m.delete(adapter);
    }
    if (this.activeAdapterNames.includes(adapter)) {
      const remaining = this.adapterNames();
      const next = this.activeAdapterNames.filter((a) => a !== adapter);
      if (next.length === 0 && remaining.length > 0) {
        tunerWarn(`Adapter "${adapter}" was active and is deleted; "${remaining[0]}" is now active.`);
        next.push(remaining[0]!);
      }
      this.setAdapter(next);
    }
  }

  /** Adapters to merge: explicit list or the active ones, minus those not in this layer. */
  protected adaptersToMerge(adapterNames?: string[]): string[] {
    if (this.merged) {
      tunerWarn(
        `Already merged with ${JSON.stringify(this.mergedAdapters)}; merging ${JSON.stringify(adapterNames ?? this.activeAdapterNames)} on top.`,
      );
    }
    const present = new Set(this.adapterNames());
    return (adapterNames ?? this.activeAdapterNames).filter((a) => present.has(a));
  }
}

/** True if `m` is an adapter layer. */
export function isTunerLayer(m: unknown): m is BaseTunerLayer {
  return m instanceof BaseTunerLayer;
}
