/**
 * LoRA layers (PEFT lora/layer.py): `LoraLayer` holds the per-adapter state shared by
 * every LoRA layer kind; `LoraLinear` wraps any {@link LinearLike} base (nn `Linear`, GPT-2 Conv1D via
 * `fanInFanOut`, the 4-bit layer of QLoRA); `LoraEmbedding` is in `embedding.ts`.
 *
 * State-dict layout equals PEFT's: `<path>.base_layer.weight`, `<path>.lora_A.<adapter>.weight` (r×in),
 * `<path>.lora_B.<adapter>.weight` (out×r, + `.bias` with `loraBias`).
 *
 * EXTENSION POINTS:
 *  - the gate, merge/unmerge driver and safe-merge check are `BaseTunerLayer`'s template
 *    (tuners/base/layer.ts); a layer kind supplies `loraForward`, `getDeltaWeight` and its base weight.
 *  - variants (DoRA): `updateLayer` resolves `useDora` through `variant.ts` and calls the variant's
 *    `init`; `adapterForward`/`mergedWeight` delegate the adapter's part to it.
 *  - QLoRA: any base implementing `LinearLike` works; merge goes through `denseWeight()/setDenseWeight()`.
 *  - AdaLoRA's SVD layer extends `BaseTunerLayer` (tuners/base/layer.ts) directly: its tensors and
 *    scaling differ, and it reuses the same template and dict/adapter bookkeeping there.
 *
 * @example
 * const layer = new LoraLinear(new Linear(16, 8), 'default', { r: 4, loraAlpha: 8 });
 * layer.forward(x); // base(x) + B(A(x))·(8/4); equals base(x) at init (B = 0)
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { Linear, Dropout } from '../../nn/layers.js';
import { ModuleDict } from '../../nn/module_dict.js';
import type { Module } from '../../nn/module.js';
import type { LinearLike } from '../../nn/linear_like.js';
import { normal } from '../../nn/init.js';
import { loraDelta } from '../../tensor/ops/lora.js';
import { adapterLinear, adapterLinearFuses } from '../../tensor/ops/adapter_linear.js';
import { ConfigError } from '../../errors.js';
import { BaseTunerLayer, transposeIf } from '../base/layer.js';
import { frozenLinearOf, soleActiveAdapter } from '../base/fused_forward.js';
import { loftqOptions, type LoftqOptions, type LoraInit } from './config.js';
import { resolveLoraVariant, type LoraLayerKind, type LoraVariant } from './variant.js';
import { loftqInit, oloraInit, pissaInit } from './init.js';

/** What `updateLayer` needs for one adapter (resolved per module: rank/alpha patterns applied). */
export interface LoraLayerOptions {
  r: number;
  loraAlpha: number;
  loraDropout?: number;
  initLoraWeights?: LoraInit;
  /** Quantiser bits and rounds of the 'loftq' init (from `loftqConfig`). */
  loftq?: LoftqOptions;
  useRslora?: boolean;
  useDora?: boolean;
  loraBias?: boolean;
}

/** Per-adapter state shared by LoRA layer kinds (PEFT `LoraLayer`). */
export abstract class LoraLayer extends BaseTunerLayer {
  abstract readonly kind: LoraLayerKind;
  override readonly otherParamNames = [
    'r',
    'loraAlpha',
    'scaling',
    'useRslora',
    'loraBias',
    'variants',
  ] as const;
  readonly r = new Map<string, number>();
  readonly loraAlpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();
  readonly useRslora = new Map<string, boolean>();
  readonly loraBias = new Map<string, boolean>();
  /** Variant per adapter (DoRA); absent for plain LoRA. */
  readonly variants = new Map<string, LoraVariant>();

  get adapterLayerNames(): readonly string[] {
    const extra = new Set<string>();
    this.variants.forEach((v) => v.extraLayerNames.forEach((n) => extra.add(n)));
    return ['lora_A', 'lora_B', 'lora_embedding_A', 'lora_embedding_B', ...extra];
  }

  /** Creates (or re-creates) one adapter's tensors; see PEFT `update_layer`. */
  abstract updateLayer(adapter: string, opts: LoraLayerOptions): void;

  /** `alpha/r`, or `alpha/√r` with rsLoRA (PEFT `LoraLayer.update_layer`). */
  protected computeScaling(r: number, alpha: number, rslora: boolean): number {
    return rslora ? alpha / Math.sqrt(r) : alpha / r;
  }

  /** Stores rank/alpha/scaling after checking the rank (PEFT raises on r ≤ 0 at this point). */
  protected setAdapterScalars(adapter: string, opts: LoraLayerOptions): void {
    if (!Number.isInteger(opts.r) || opts.r <= 0) {
      throw new ConfigError(
        `LoRA layer, adapter "${adapter}"`,
        'r must be a positive integer',
        opts.r,
        'check r and rankPattern',
      );
    }
    this.r.set(adapter, opts.r);
    this.loraAlpha.set(adapter, opts.loraAlpha);
    this.useRslora.set(adapter, opts.useRslora ?? false);
    this.loraBias.set(adapter, opts.loraBias ?? false);
    this.scaling.set(adapter, this.computeScaling(opts.r, opts.loraAlpha, opts.useRslora ?? false));
  }

  /** PEFT `set_scale`: scaling = scale·alpha/r (or /√r). */
  setScale(adapter: string, scale: number): void {
    if (!this.r.has(adapter)) return;
    const base = this.computeScaling(
      this.r.get(adapter)!,
      this.loraAlpha.get(adapter)!,
      this.useRslora.get(adapter)!,
    );
    this.scaling.set(adapter, scale * base);
  }

  /** The adapter's scaling factor; throws for unknown adapters. */
  scalingOf(adapter: string): number {
    const s = this.scaling.get(adapter);
    if (s === undefined)
      throw new ConfigError(
        'LoraLayer',
        'unknown adapter',
        adapter,
        `use one of ${JSON.stringify(this.adapterNames())}`,
      );
    return s;
  }

  /** Resolves the variant (DoRA) for this adapter and runs its init. */
  protected initVariant(adapter: string, useDora: boolean): void {
    const v = resolveLoraVariant({ useDora }, this.kind, 'LoraConfig');
    if (v) {
      this.variants.set(adapter, v);
      v.init(this, adapter);
    } else {
      this.variants.delete(adapter);
    }
  }

  override deleteAdapter(adapter: string): void {
    super.deleteAdapter(adapter);
    const drop = (this as unknown as { lora_dropout?: ModuleDict }).lora_dropout;
    if (drop?.has(adapter)) drop.delete(adapter);
  }

  /** Variant adapters (DoRA) contribute through the variant, plain ones through `loraForward`. */
  protected override adapterForward(adapter: string, x: Tensor, result: Tensor): Tensor {
    const variant = this.variants.get(adapter);
    return variant ? variant.forward(this, adapter, x, result) : this.loraForward(adapter, x, result);
  }

  /** `result` plus the plain LoRA contribution of one adapter (inside `forward`'s tidy). */
  protected abstract loraForward(adapter: string, x: Tensor, result: Tensor): Tensor;

  /** A variant (DoRA) merges its own way; plain LoRA is `W ± ΔW`. */
  protected override mergedWeight(adapter: string, w: Tensor, sign: 1 | -1): Tensor {
    const variant = this.variants.get(adapter);
    if (!variant) return super.mergedWeight(adapter, w, sign);
    return sign > 0 ? variant.merge(this, adapter, w) : variant.unmerge(this, adapter, w);
  }
}

/** LoRA on a linear layer (PEFT `lora.Linear`). */
export class LoraLinear extends LoraLayer {
  readonly kind = 'linear' as const;
  declare base_layer: LinearLike;
  declare lora_A: ModuleDict<Linear>;
  declare lora_B: ModuleDict<Linear>;
  declare lora_dropout: ModuleDict<Dropout>;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly fanInFanOut: boolean;

  constructor(baseLayer: LinearLike, adapter: string, opts: LoraLayerOptions) {
    super(baseLayer);
    this.inFeatures = baseLayer.inFeatures;
    this.outFeatures = baseLayer.outFeatures;
    this.fanInFanOut = baseLayer.fanInFanOut;
    this.registerModule('lora_A', new ModuleDict<Linear>());
    this.registerModule('lora_B', new ModuleDict<Linear>());
    this.registerModule('lora_dropout', new ModuleDict<Dropout>());
    this.activeAdapterNames = [adapter];
    this.updateLayer(adapter, opts);
  }

  /** PEFT `update_layer` for Linear: A (r×in), B (out×r), dropout, scaling, init, variant. */
  override updateLayer(adapter: string, opts: LoraLayerOptions): void {
    this.setAdapterScalars(adapter, opts);
    const { r } = opts;
    // A dropout made after construction (second adapter, resize on load) follows the layer's mode.
    this.lora_dropout.set(adapter, new Dropout(opts.loraDropout ?? 0)).train(this.training);
    this.lora_A.set(adapter, new Linear(this.inFeatures, r, { bias: false }));
    this.lora_B.set(adapter, new Linear(r, this.outFeatures, { bias: opts.loraBias ?? false }));
    this.resetLoraParameters(adapter, opts.initLoraWeights ?? true, opts.loftq);
    this.initVariant(adapter, opts.useDora ?? false);
    this.setAdapter(this.activeAdapterNames);
  }

  /** PEFT lora/layer.py `reset_lora_parameters`; `loftq` is read for init 'loftq'. */
  resetLoraParameters(adapter: string, init: LoraInit, loftq: LoftqOptions = loftqOptions({})): void {
    if (init === false) return; // keep nn.Linear defaults: A, B ~ U(±1/√fan_in) — not a no-op LoRA
    if (init === 'pissa') return pissaInit(this, adapter);
    if (init === 'olora') return oloraInit(this, adapter);
    if (init === 'loftq') return loftqInit(this, adapter, loftq);
    const A = this.lora_A.get(adapter)!;
    const B = this.lora_B.get(adapter)!;
    if (init === 'gaussian') {
      const r = this.r.get(adapter)!;
      const a = normal([r, this.inFeatures], 0, 1 / r);
      A.weight.assign(a);
      a.dispose();
    } // init === true: A keeps kaiming_uniform(a=√5) = U(±1/√in), exactly nn.Linear's draw
    tf.tidy(() => {
      B.weight.assign(tf.zerosLike(B.weight));
      if (B.bias) B.bias.assign(tf.zerosLike(B.bias));
    });
  }

  /**
   * One plain adapter on a frozen nn `Linear` runs as one op ({@link adapterLinear}: a single
   * kernel each way on `native`); everything else (several active adapters, DoRA, `loraBias`, a
   * trainable or 4-bit base, merged or disabled adapters, other backends) takes the template's path.
   * Both give the same values up to float32 rounding, draw the same dropout mask, and consume the
   * same seeds.
   */
  override forward(x: Tensor): Tensor {
    return this.fusedForward(x) ?? super.forward(x);
  }

  private fusedForward(x: Tensor): Tensor | null {
    const a = soleActiveAdapter(this);
    const base = frozenLinearOf(this.base_layer);
    if (a === null || !base || this.variants.has(a) || this.loraBias.get(a)) return null;
    const A = this.lora_A.get(a);
    const B = this.lora_B.get(a);
    if (!A || !B || B.bias) return null;
    const factors = { a: A.weight, b: B.weight, scale: this.scaling.get(a)! };
    if (!adapterLinearFuses(x, base, factors)) return null;
    return adapterLinear(x, base, factors, this.lora_dropout.get(a)!.draw());
  }

  protected override loraForward(a: string, x: Tensor, result: Tensor): Tensor {
    const A = this.lora_A.get(a)!;
    const B = this.lora_B.get(a)!;
    const xd = this.lora_dropout.get(a)!.forward(x);
    if (B.bias) {
      // lora_bias: B's bias is scaled too (PEFT), so keep the [.., out]-sized scale pass
      return tf.add(result, tf.mul(B.forward(A.forward(xd)), this.scaling.get(a)!));
    }
    // x·Aᵀ·(B·s)ᵀ: the scale folded into B instead of the [.., out] output (ops/lora.ts)
    return tf.add(result, loraDelta(xd, A.weight, B.weight, this.scaling.get(a)!));
  }

  /** `transpose(B·A, fanInFanOut)·scaling` in the base weight's layout (PEFT `get_delta_weight`). Caller disposes. */
  override getDeltaWeight(adapter: string): Tensor {
    return tf.tidy(() => {
      const ba = tf.matMul(this.lora_B.get(adapter)!.weight, this.lora_A.get(adapter)!.weight); // [out, in]
      return tf.mul(transposeIf(ba, this.fanInFanOut), this.scalingOf(adapter));
    });
  }

  protected override readBaseWeight(): Tensor {
    return this.base_layer.denseWeight();
  }

  protected override writeBaseWeight(w: Tensor): void {
    this.base_layer.setDenseWeight(w);
  }

  /** With `loraBias`, B's bias (scaled) merges into the base bias (PEFT `lora_bias`). */
  protected override mergedBias(
    adapter: string,
    sign: 1 | -1,
  ): { next: Tensor; write(b: Tensor): void } | null {
    const Bb = this.lora_B.get(adapter)!.bias;
    if (!this.loraBias.get(adapter) || !Bb) return null;
    const baseBias = this.base_layer.bias;
    if (!baseBias) {
      throw new ConfigError(
        'LoraConfig.loraBias',
        'needs a base layer with a bias to merge into',
        adapter,
        'set loraBias: false for layers without bias',
      );
    }
    return {
      next: tf.add(baseBias, tf.mul(Bb, sign * this.scaling.get(adapter)!)),
      write: (b) => baseBias.assign(b),
    };
  }
}

/** The wrapped base module of a LoRA layer, for callers that need the concrete type. */
export function loraBaseOf(m: Module): Module {
  return m instanceof BaseTunerLayer ? m.getBaseLayer() : m;
}
