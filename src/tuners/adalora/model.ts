/**
 * `AdaLoraModel` (PEFT adalora/model.py: module wrapping, model-level checks, `update_and_allocate`,
 * orthogonal loss, rank-pattern resizing): `LoraModel` with `SVDLinear` layers of rank `initR`, one trainable
 * adapter with its rank allocator, the orthogonal regulariser added to the model's loss, and save/load by
 * rank pattern.
 *
 * Better than PEFT, on purpose:
 * - inference-mode adapters never touch the regulariser or the allocator (PEFT #571 crashed when a
 *   loaded adapter ran a forward with labels): with no trainable adapter the loss is returned as is;
 * - reaching the final phase with no rank pattern is a clear `ConfigError` (PEFT: AttributeError);
 * - saving a trainable adapter that took training steps while `updateAndAllocate` was never called
 *   warns (PEFT #1327: AdaLoRA silently degrades to LoRA with a fixed rank);
 * - `addWeightedAdapter` is rejected with a typed error (PEFT: TypeError).
 * As in PEFT, saving writes the rank pattern with keys without `.<adapter>` back into the config
 * (only the trailing suffix is removed, so module names containing the adapter name survive).
 *
 * @example
 * const peft = getPeftModel(model, new AdaLoraConfig({ initR: 12, targetR: 8, totalStep: 3000 }));
 * // per optimizer step: grads → optimizer update → peft.updateAndAllocate(step, grads)
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import type { Module } from '../../nn/module.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { BaseTunerLayer } from '../base/layer.js';
import { tunerWarn } from '../base/warnings.js';
import { SAVED_KEY_PREFIX } from '../base/state_dict.js';
import { LoraModel } from '../lora/model.js';
import { AdaLoraConfig } from './config.js';
import { SVDLinear, createSvdModule, type SvdAdapterOptions } from './layer.js';
import { orthRegularizer } from './orth_reg.js';
import { AdaLoraAllocation, type AllocationStep, type GradMap } from './allocation.js';
import {
  resizeModulesByRankPattern,
  stripAdapterFromPattern,
  trimStateDictByRankPattern,
} from './save_load.js';

/** Layer options of every AdaLoRA layer: rank `initR`, the config's alpha (no per-module patterns, PEFT adalora/model.py `_create_and_replace`). */
export function svdOptions(config: AdaLoraConfig): SvdAdapterOptions {
  return {
    r: config.initR,
    loraAlpha: config.loraAlpha,
    loraDropout: config.loraDropout,
    initLoraWeights: config.initLoraWeights,
  };
}

export class AdaLoraModel extends LoraModel<AdaLoraConfig> {
  /** The one adapter that trains (null when every adapter is in inference mode). */
  trainableAdapterName: string | null = null;
  /** Allocator state of the trainable adapter. */
  allocation: AdaLoraAllocation | null = null;
  /** Forward passes in training mode that computed a loss (for the PEFT #1327 warning). */
  trainingForwards = 0;

  /** Spec §2.5: an AdaLoraConfig, and at most one adapter with `inferenceMode: false`. */
  protected override checkNewAdapterConfig(config: AdaLoraConfig, adapter: string): void {
    if (!(config instanceof AdaLoraConfig)) {
      throw new ConfigError(
        'AdaLoraModel.addAdapter',
        'needs an AdaLoraConfig',
        (config as object).constructor.name,
        'build the config with new AdaLoraConfig({...})',
      );
    }
    super.checkNewAdapterConfig(config, adapter);
    if (!config.inferenceMode && this.trainableAdapterName !== null) {
      throw new ConfigError(
        'AdaLoraModel.addAdapter',
        `only one adapter can train, and "${this.trainableAdapterName}" already does`,
        adapter,
        `add "${adapter}" with inferenceMode: true (or load it without isTrainable)`,
      );
    }
  }

  /** Adds the adapter; a trainable one gets the rank allocator (PEFT `AdaLoraModel.__init__`). */
  override addAdapter(adapter: string, config: AdaLoraConfig): void {
    super.addAdapter(adapter, config);
    if (!config.inferenceMode) {
      this.trainableAdapterName = adapter;
      this.allocation = new AdaLoraAllocation(this.model, config, adapter);
    }
  }

  override deleteAdapter(adapter: string): void {
    super.deleteAdapter(adapter);
    if (adapter === this.trainableAdapterName) {
      this.allocation?.dispose();
      this.allocation = null;
      this.trainableAdapterName = null;
    }
  }

  protected override createAndReplace(
    config: AdaLoraConfig,
    adapter: string,
    target: Module,
    key: string,
  ): void {
    if (target instanceof SVDLinear) {
      target.updateLayer(adapter, svdOptions(config));
      return;
    }
    super.createAndReplace(config, adapter, target, key);
  }

  /** An `SVDLinear` for a linear-like target; Embedding and others are rejected (PEFT `_create_new_module`). */
  protected override createNewModule(
    config: AdaLoraConfig,
    adapter: string,
    target: Module,
    key: string,
  ): BaseTunerLayer {
    const { layer, fanInFanOut } = createSvdModule(
      target,
      adapter,
      svdOptions(config),
      config.fanInFanOut,
      key,
    );
    config.fanInFanOut = fanInFanOut; // PEFT mutates the shared config the same way, so the saved file says what was used
    return layer;
  }

  /**
   * The wrapped model's forward plus `orthRegWeight · R` on `loss` when a loss was computed and an
   * adapter trains (PEFT `AdaLoraModel.forward`). The model's own loss tensor is replaced (and disposed).
   */
  override forward(inputs: ModelInputs): ModelOutput {
    const out = super.forward(inputs);
    if (!out.loss || this.trainableAdapterName === null) return out;
    const adapter = this.trainableAdapterName;
    const w = this.requireConfig(adapter).orthRegWeight;
    if (this.training) this.trainingForwards++;
    const loss = out.loss;
    out.loss = tf.tidy(() =>
      tf.add(loss, tf.mul(orthRegularizer(this.model.namedParameters(), adapter), tf.scalar(w))),
    );
    loss.dispose();
    return out;
  }

  /** Scales every AdaLoRA layer of `adapter` to `scale · alpha` (PEFT's `set_scale`, corrected: the one AdaLoRA inherits from LoRA recomputes alpha/r). */
  override setScale(adapter: string, scale: number): void {
    for (const [, l] of this.tunerLayers()) if (l instanceof SVDLinear) l.setScale(adapter, scale);
  }

  /**
   * AdaLoRA's step (PEFT `update_and_allocate`): call once per optimizer step, after the update, with the
   * 0-based step and the gradients of that step (by parameter name or tfjs variable name; needed before
   * `totalStep − tfinal`). See `allocation.ts` for the three phases.
   * @example const info = tuner.updateAndAllocate(step, grads); // { phase, budget, masked, ranks }
   */
  updateAndAllocate(globalStep: number, grads?: GradMap): AllocationStep {
    return this.trainableAllocation(globalStep).updateAndAllocate(globalStep, grads);
  }

  /**
   * {@link updateAndAllocate} reading tensors asynchronously: the same result on every backend, and
   * the one WebGPU/WebGL need (a synchronous read there stalls or loses the device).
   * @example const info = await tuner.updateAndAllocateAsync(step, grads);
   */
  updateAndAllocateAsync(globalStep: number, grads?: GradMap): Promise<AllocationStep> {
    return this.trainableAllocation(globalStep).updateAndAllocateAsync(globalStep, grads);
  }

  private trainableAllocation(globalStep: number): AdaLoraAllocation {
    if (!this.allocation) {
      throw new ConfigError(
        'AdaLoraModel.updateAndAllocate',
        'no adapter is trainable (all are in inference mode), so there is nothing to allocate',
        globalStep,
        'create the adapter with inferenceMode: false, or load it with isTrainable: true',
      );
    }
    return this.allocation;
  }

  /** PEFT `add_weighted_adapter` is not defined for AdaLoRA (its ranks differ per layer). */
  override addWeightedAdapter(_adapters: string[], _weights: number[], _name: string): never {
    throw new NotSupportedError(
      'AdaLoraModel.addWeightedAdapter',
      'combining AdaLoRA adapters by weights',
      'PEFT does not support it for AdaLoRA either; merge each adapter instead, or use LoRA adapters',
    );
  }

  /**
   * Mixed-batch inference (one adapter per row) is LoRA-only; PEFT's SVD layers have no `adapter_names`
   * path either. Rejected instead of silently running the SVD layers with the active adapter.
   */
  override forwardMixed(_inputs: ModelInputs, _adapterNames: string[]): ModelOutput {
    throw new NotSupportedError(
      'AdaLoraModel.forwardMixed',
      'a different AdaLoRA adapter per batch row',
      'run one forward per adapter (setAdapter, then forward)',
    );
  }

  /**
   * Adapter tensors trimmed by the rank pattern, without `ranknum` (PEFT utils/save_and_load.py); stores the
   * pattern with keys without `.<adapter>` in the config, as PEFT does, so `adapter_config.json` matches
   * PEFT's.
   */
  override adapterStateDictForSave(adapter: string): Map<string, Tensor> {
    const cfg = this.requireConfig(adapter);
    if (
      adapter === this.trainableAdapterName &&
      cfg.pattern === null &&
      this.allocation?.calls === 0 &&
      this.trainingForwards > 0
    ) {
      tunerWarn(
        `AdaLoRA adapter "${adapter}": updateAndAllocate was never called during ${this.trainingForwards} training forward(s), so no rank was pruned and the adapter is a fixed-rank (initR) SVD-LoRA. Call peftModel.updateAndAllocate(step, grads) after every optimizer step (PEFT #1327).`,
      );
    }
    const full = super.adapterStateDictForSave(adapter);
    if (cfg.pattern === null) return full;
    const { state } = trimStateDictByRankPattern(
      full,
      cfg.pattern,
      adapter,
      (p, l) => `${SAVED_KEY_PREFIX}${p}.${l}`,
    );
    for (const [k, t] of full) if (state.get(k) !== t) t.dispose();
    cfg.rankPattern = stripAdapterFromPattern(cfg.pattern, adapter);
    return state;
  }

  /** Resizes layers to the rank pattern before a trimmed checkpoint is copied in (PEFT `resize_modules_by_rank_pattern`). */
  protected override beforeLoadAdapterStateDict(adapter: string, state: Map<string, Tensor>): void {
    super.beforeLoadAdapterStateDict(adapter, state);
    const cfg = this.requireConfig(adapter);
    if (cfg.pattern === null) return;
    resizeModulesByRankPattern(this.model, cfg.pattern, adapter, svdOptions(cfg));
    this.setAdapter(this.activeAdapters); // resized variables: recompute trainable flags
    if (adapter === this.trainableAdapterName) {
      // The allocator counts the ranks it finds (PEFT too): Σ kept ranks after a trimmed load.
      this.allocation?.dispose();
      this.allocation = new AdaLoraAllocation(this.model, cfg, adapter);
    }
  }
}
