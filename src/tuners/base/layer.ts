/**
 * `BaseTunerLayer`: the contract every adapter layer meets (PEFT `BaseTunerLayer`, tuners_utils.py).
 * It wraps the original module as the child `base_layer` (state-dict keys `q_proj.base_layer.weight`,
 * as PEFT saves them) and keeps per-adapter tensors in dict-like children named in `adapterLayerNames`
 * (`lora_A.default.weight`, `lora_E.default`). The tuner model drives it through this interface only.
 *
 * It is also the one adapter-layer template (PEFT `LoraLayer`, from which PEFT derives `AdaLoraLayer`):
 * the disabled/merged gate of `forward`, the merge/unmerge driver, the safe-merge check and the
 * fan-in-fan-out layout live here once, so every layer behaves the same way:
 *  - `forward`: adapters disabled → unmerge if merged, base output; merged → base output; otherwise
 *    the base output plus each active adapter's `adapterForward`.
 *  - `merge({ safeMerge })`: the new weight is computed first and refused with a `CheckpointError`
 *    when it holds NaN/Inf (PEFT raises "NaNs detected in the merged weights"); the base is unchanged.
 *  - `unmerge()` with nothing merged warns "Already unmerged. Nothing to do." (PEFT) and returns.
 *
 * EXTENSION POINT — a new adapter layer (LoRA's Linear/Embedding, AdaLoRA's SVD layer) subclasses this
 * and supplies only its delta: `adapterForward` (the adapter's contribution to the output),
 * `getDeltaWeight`, and `readBaseWeight`/`writeBaseWeight` (the base weight in storage layout);
 * `mergedWeight`/`mergedBias` are overridden where merging is more than `W ± ΔW` (DoRA, `loraBias`).
 * It lists its dict children in `adapterLayerNames` (+ per-adapter scalars in `otherParamNames` if it
 * keeps Maps keyed by adapter).
 *
 * @example
 * for (const [, m] of model.namedModules()) if (m instanceof BaseTunerLayer) m.setAdapter(['default']);
 */
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { readDataSync } from '../../tensor/read.js';
import { Module } from '../../nn/module.js';
import { CheckpointError, ConfigError } from '../../errors.js';
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

  /** The adapter's weight delta in the base weight's storage layout. Caller disposes. */
  abstract getDeltaWeight(adapter: string): Tensor;
  /**
   * `result` plus one adapter's contribution for input `x` (called inside `forward`'s `tf.tidy`, only
   * for active adapters present in this layer).
   */
  protected abstract adapterForward(adapter: string, x: Tensor, result: Tensor): Tensor;
  /** The base weight in storage layout (dequantised for a 4-bit base); called inside `tf.tidy`. */
  protected abstract readBaseWeight(): Tensor;
  /** Writes a new base weight (storage layout); the argument stays owned by the caller. */
  protected abstract writeBaseWeight(w: Tensor): void;

  /**
   * The base output plus every active adapter's contribution; with adapters disabled the base output
   * (unmerging first if merged), and the base output alone while merged (PEFT `LoraLayer.forward`).
   * @example const y = layer.forward(x); // [.., out]
   */
  forward(x: Tensor): Tensor {
    if (this.disableAdapters) {
      if (this.merged) this.unmerge();
      return this.baseForward(x);
    }
    if (this.merged) return this.baseForward(x);
    return tf.tidy(() => {
      let result = this.baseForward(x);
      for (const a of this.activeAdapterNames) {
        if (this.hasAdapter(a)) result = this.adapterForward(a, x, result);
      }
      return result;
    });
  }

  /**
   * Adds the listed (default: active) adapters' deltas into the base weight. With `safeMerge` every new
   * tensor is checked before anything is written: NaN/Inf throws a `CheckpointError` and leaves the
   * base weights unchanged (PEFT `merge(safe_merge=True)`).
   * @example layer.merge({ safeMerge: true }); layer.forward(x); // base only, adapters folded in
   */
  merge(opts: MergeOptions = {}): void {
    for (const a of this.adaptersToMerge(opts.adapterNames)) {
      this.applyMerge(a, opts.safeMerge ?? false, +1);
      this.mergedAdapters.push(a);
    }
  }

  /**
   * Subtracts every merged adapter, last merged first. With nothing merged it warns (PEFT: "Already
   * unmerged. Nothing to do.") and does nothing.
   * @example layer.merge(); layer.unmerge(); // base weight restored up to float32 rounding
   */
  unmerge(): void {
    if (!this.merged) {
      tunerWarn('Already unmerged. Nothing to do.');
      return;
    }
    while (this.mergedAdapters.length > 0) this.applyMerge(this.mergedAdapters.pop()!, false, -1);
  }

  /** The new base weight with `adapter` added (sign +1) or removed (−1): `W ± ΔW` unless overridden. */
  protected mergedWeight(adapter: string, w: Tensor, sign: 1 | -1): Tensor {
    return sign > 0 ? tf.add(w, this.getDeltaWeight(adapter)) : tf.sub(w, this.getDeltaWeight(adapter));
  }

  /**
   * Bias merge of an adapter that trains one (LoRA's `loraBias`): the new base bias and where to write
   * it, or null (default). Called inside `tf.tidy` after the weight passed the safe-merge check.
   */
  protected mergedBias(_adapter: string, _sign: 1 | -1): { next: Tensor; write(b: Tensor): void } | null {
    return null;
  }

  /** Adds (sign +1) or removes (−1) one adapter in the base weights; checks everything before writing. */
  private applyMerge(adapter: string, safe: boolean, sign: 1 | -1): void {
    tf.tidy(() => {
      const next = this.mergedWeight(adapter, this.readBaseWeight(), sign);
      if (safe) assertFiniteMerge(next, adapter);
      const bias = this.mergedBias(adapter, sign);
      if (bias && safe) assertFiniteMerge(bias.next, adapter);
      this.writeBaseWeight(next);
      if (bias) bias.write(bias.next);
    });
  }

  /** The wrapped module's output (every base a tuner wraps has a one-tensor forward). */
  private baseForward(x: Tensor): Tensor {
    return (this.base_layer as Module & { forward(x: Tensor): Tensor }).forward(x);
  }

  /** True if this layer holds tensors of `adapter`. */
  hasAdapter(adapter: string): boolean {
    return this.adapterDicts().some(([, d]) => d.has(adapter));
  }

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

/**
 * Throws a `CheckpointError` when a merged weight holds NaN/Inf: the adapter's tensors are broken (PEFT
 * `safe_merge` raises "NaNs detected in the merged weights. The adapter ... seems to be broken").
 * Reads one boolean synchronously, so safe merging runs on a CPU backend.
 * @example tf.tidy(() => assertFiniteMerge(tf.add(w, delta), 'default'));
 */
export function assertFiniteMerge(w: Tensor, adapter: string): void {
  const ok = tf.tidy(
    () => readDataSync(tf.all(tf.isFinite(w)), 'merge (safeMerge)', 'merge on a CPU backend')[0],
  );
  if (!ok) {
    throw new CheckpointError(
      `merge adapter "${adapter}"`,
      'the merged weights contain NaN or Inf, so the adapter is broken',
      adapter,
      'check the adapter weights and the training loss; the base weights were left unchanged',
    );
  }
}

/**
 * A [out, in] weight in the storage layout of a base with `fanInFanOut` ([in, out], GPT-2's Conv1D),
 * and back (PEFT `transpose(weight, fan_in_fan_out)`).
 * @example const delta = transposeIf(tf.matMul(B, A), layer.base_layer.fanInFanOut);
 */
export function transposeIf(w: Tensor, fanInFanOut: boolean): Tensor {
  return fanInFanOut ? w.transpose() : w;
}

/**
 * The `fanInFanOut` a target module needs: its own layout. When the config disagrees, warns as PEFT does
 * and returns the module's value, which the caller writes back into the config (PEFT mutates the shared
 * config too, so the saved adapter_config.json says what was used).
 * @example config.fanInFanOut = reconcileFanInFanOut(config.fanInFanOut, target, key);
 */
export function reconcileFanInFanOut(
  configValue: boolean,
  target: { fanInFanOut: boolean },
  name: string,
): boolean {
  if (configValue !== target.fanInFanOut) {
    // PEFT: "fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True."
    const layout = target.fanInFanOut
      ? 'a Conv1D-style layer (weight [in, out])'
      : 'a Linear layer (weight [out, in])';
    tunerWarn(
      `fanInFanOut is ${configValue} but the target module "${name}" is ${layout}. Setting fanInFanOut to ${target.fanInFanOut}.`,
    );
  }
  return target.fanInFanOut;
}

/** True if `m` is an adapter layer. */
export function isTunerLayer(m: unknown): m is BaseTunerLayer {
  return m instanceof BaseTunerLayer;
}
