/**
 * `SVDLinear`: AdaLoRA's SVD-form adapter W + P·Λ·Q (paper arXiv 2303.10512 §3.1, Eq. 3) on a linear
 * layer, exactly as PEFT's `SVDLinear` (PEFT adalora/layer.py):
 *
 * - `lora_A.<adapter>` [r, in] (Q, "right singular vectors"), `lora_E.<adapter>` [r, 1] (Λ),
 *   `lora_B.<adapter>` [out, r] (P): `ParameterDict` entries, so state-dict keys have no `.weight`.
 * - `ranknum.<adapter>` [1] = r, not trainable; it stays `initR` for the whole run (pruning only zeroes
 *   E entries; loading a trimmed adapter restores it, PEFT `resize_modules_by_rank_pattern`), so the scale
 * never changes.
 * - scaling = `loraAlpha` (or r if `loraAlpha ≤ 0`), **not** alpha/r; the forward divides by
 *   f32(ranknum + 1e-5): `result += ((drop(x) @ (A∘E)ᵀ) @ Bᵀ) · scaling / (ranknum + 1e-5)`.
 * - init (any truthy `initLoraWeights`): E = 0, A, B ~ N(0, 0.02²), so a fresh adapter is the identity;
 *   `false`: all three ~ N(0, 1).
 * - the gate, merge/unmerge (safe merge: `CheckpointError`; unmerge with nothing merged warns) and the
 *   fan-in-fan-out handling are `BaseTunerLayer`'s, shared with LoRA (PEFT derives AdaLoraLayer from
 *   LoraLayer); this layer supplies its forward delta, `getDeltaWeight` and base weight access.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { loraDelta } from '../../tensor/ops/lora.js';
import { adapterLinear, adapterLinearFuses } from '../../tensor/ops/adapter_linear.js';
import { ConfigError, NotSupportedError, ShapeError } from '../../errors.js';
import { Dropout, Embedding } from '../../nn/layers.js';
import { ModuleDict, ParameterDict } from '../../nn/module_dict.js';
import { isLinearLike, type LinearLike } from '../../nn/linear_like.js';
import type { Module } from '../../nn/module.js';
import { normal } from '../../nn/init.js';
import { BaseTunerLayer, reconcileFanInFanOut, transposeIf } from '../base/layer.js';
import { frozenLinearOf, soleActiveAdapter } from '../base/fused_forward.js';

/** PEFT adds this to `ranknum` before dividing (adalora/layer.py `SVDLinear.forward`); f32(12 + 1e-5) = 12.000009536743164. */
export const RANKNUM_EPS = 1e-5;
/** Standard deviation of the A and B init (PEFT `normal_(…, mean=0.0, std=0.02)`). */
export const SVD_INIT_STD = 0.02;

export interface SvdAdapterOptions {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Truthy (true or any init name) → E = 0, A, B ~ N(0, 0.02²); false → N(0, 1) everywhere. */
  initLoraWeights: unknown;
}

/**
 * AdaLoRA layer over a `LinearLike` base (nn.Linear, GPT-2 Conv1D via `fanInFanOut`, 4-bit Linear).
 *
 * @example
 * const layer = new SVDLinear(new Linear(2, 3, { bias: false }), 'default', { r: 2, loraAlpha: 4, loraDropout: 0, initLoraWeights: true });
 * layer.forward(x); // equals base(x) until lora_E moves away from 0
 */
export class SVDLinear extends BaseTunerLayer {
  declare base_layer: LinearLike;
  declare lora_A: ParameterDict;
  declare lora_B: ParameterDict;
  declare lora_E: ParameterDict;
  declare ranknum: ParameterDict;
  declare lora_dropout: ModuleDict<Dropout>;
  readonly adapterLayerNames = ['lora_A', 'lora_B', 'lora_E'] as const;
  override readonly otherParamNames = ['r', 'loraAlpha', 'scaling'] as const;
  /** Per adapter: current rank (rows of A), alpha and scaling (= alpha, or r if alpha ≤ 0). */
  readonly r = new Map<string, number>();
  readonly loraAlpha = new Map<string, number>();
  readonly scaling = new Map<string, number>();

  constructor(base: LinearLike, adapterName: string, opts: SvdAdapterOptions) {
    super(base);
    this.registerModule('lora_A', new ParameterDict());
    this.registerModule('lora_B', new ParameterDict());
    this.registerModule('lora_E', new ParameterDict());
    this.registerModule('ranknum', new ParameterDict());
    this.registerModule('lora_dropout', new ModuleDict<Dropout>());
    this.activeAdapterNames = [adapterName];
    this.updateLayer(adapterName, opts);
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  /**
   * Creates (or re-creates) one adapter with rank `r` (PEFT adalora/layer.py `update_layer`). `r = 0` is
   * allowed (a fully pruned layer, PEFT #1539); `ranknum` is set to r.
   * @example layer.updateLayer('other', { r: 4, loraAlpha: 8, loraDropout: 0.1, initLoraWeights: true });
   */
  updateLayer(adapter: string, opts: SvdAdapterOptions): void {
    const { r, loraAlpha, loraDropout } = opts;
    if (!Number.isInteger(r) || r < 0) {
      throw new ConfigError(
        'SVDLinear.r',
        'must be an integer ≥ 0 (0 = fully pruned layer)',
        r,
        'use AdaLoraConfig.initR, e.g. 12',
      );
    }
    const inF = this.inFeatures;
    const outF = this.outFeatures;
    // A dropout made after construction (second adapter, resize on load) follows the layer's mode.
    this.lora_dropout.set(adapter, new Dropout(loraDropout)).train(this.training);
    const gaussianInit = Boolean(opts.initLoraWeights);
    // Spec §2.2 order: E zeros, then A, then B drawn.
    const e = gaussianInit ? tf.zeros([r, 1]) : normal([r, 1]);
    const a = normal([r, inF], 0, gaussianInit ? SVD_INIT_STD : 1);
    const b = normal([outF, r], 0, gaussianInit ? SVD_INIT_STD : 1);
    const ranknum = tf.tensor1d([r]);
    this.lora_A.set(adapter, a);
    this.lora_E.set(adapter, e);
    this.lora_B.set(adapter, b);
    this.ranknum.set(adapter, ranknum, false);
    // The variables hold their own copies: free the init tensors (no leak per adapter).
    tf.dispose([a, e, b, ranknum]);
    this.r.set(adapter, r);
    this.loraAlpha.set(adapter, loraAlpha);
    this.scaling.set(adapter, loraAlpha > 0 ? loraAlpha : r);
    // A freshly made adapter is trainable only if it is active (PEFT set_adapter semantics).
    const on = this.activeAdapterNames.includes(adapter);
    for (const [, p] of this.adapterParameters(adapter)) p.trainable = on;
  }

  /** Removes one adapter (its `ranknum` too). */
  override deleteAdapter(adapter: string): void {
    super.deleteAdapter(adapter);
    if (this.ranknum.has(adapter)) this.ranknum.delete(adapter);
    this.lora_dropout.delete(adapter);
  }

  /**
   * Scaling = `scale · alpha` (or `scale · r` if alpha ≤ 0). PEFT's inherited `set_scale` recomputes
   * `alpha / r` here, which is wrong for AdaLoRA (its `update_layer` sets scaling = alpha); the rank
   * division stays in `ranknum`.
   * @example layer.setScale('default', 0.5); // halves the adapter's contribution
   */
  setScale(adapter: string, scale: number): void {
    const alpha = this.loraAlpha.get(adapter);
    if (alpha === undefined) return;
    this.scaling.set(adapter, scale * (alpha > 0 ? alpha : this.r.get(adapter)!));
  }

  /** f32(ranknum + 1e-5) as a [1] tensor (an f32 op, as in torch), in a tidy scope of the caller. */
  private ranknumPlusEps(adapter: string): Tensor {
    return tf.add(this.ranknum.get(adapter)!, tf.scalar(RANKNUM_EPS));
  }

  /**
   * One active adapter on a frozen nn `Linear` runs as one op ({@link adapterLinear}: on `native`
   * one kernel each way plus the A∘E / scaled-B factors); otherwise the template's path. Same
   * values up to float32 rounding, same dropout mask and seeds.
   */
  override forward(x: Tensor): Tensor {
    return this.fusedForward(x) ?? super.forward(x);
  }

  private fusedForward(x: Tensor): Tensor | null {
    const a = soleActiveAdapter(this);
    const base = frozenLinearOf(this.base_layer);
    if (a === null || !base || !this.r.get(a)) return null;
    const factors = {
      a: this.lora_A.get(a)!,
      b: this.lora_B.get(a)!,
      e: this.lora_E.get(a)!,
      ranknum: this.ranknum.get(a)!,
      scale: this.scaling.get(a)!,
    };
    if (!adapterLinearFuses(x, base, factors)) return null;
    return adapterLinear(x, base, factors, this.lora_dropout.get(a)!.draw());
  }

  /** Spec §2.3: one adapter's `((drop(x) @ (A∘E)ᵀ) @ Bᵀ) · scaling / (ranknum + 1e-5)`. */
  protected override adapterForward(adapter: string, x: Tensor, result: Tensor): Tensor {
    if (this.r.get(adapter) === 0) return result; // rank 0 adds exactly nothing
    const xd = this.lora_dropout.get(adapter)!.forward(x);
    // the scale folded into B (ops/lora.ts)
    const delta = loraDelta(
      xd,
      this.lora_A.get(adapter)!,
      this.lora_B.get(adapter)!,
      this.scaling.get(adapter)!,
      {
        e: this.lora_E.get(adapter)!,
        ranknum: this.ranknum.get(adapter)!,
      },
    );
    return tf.add(result, delta);
  }

  /**
   * `transpose(B @ (A∘E), fanInFanOut) · scaling / (ranknum + 1e-5)` (PEFT `SVDLinear.get_delta_weight`).
   * Caller disposes.
   * @example const d = layer.getDeltaWeight('default'); // [out, in] (or [in, out] with fanInFanOut)
   */
  getDeltaWeight(adapter: string): Tensor {
    return tf.tidy(() => {
      const a = this.lora_A.get(adapter);
      if (!a)
        throw new ConfigError(
          'SVDLinear.getDeltaWeight',
          'no such adapter in this layer',
          adapter,
          `known: ${this.adapterNames().join(', ')}`,
        );
      const ba = tf.matMul(this.lora_B.get(adapter)!, tf.mul(a, this.lora_E.get(adapter)!)); // [out, in]
      const oriented = transposeIf(ba, this.base_layer.fanInFanOut);
      return tf.div(tf.mul(oriented, tf.scalar(this.scaling.get(adapter)!)), this.ranknumPlusEps(adapter));
    });
  }

  protected override readBaseWeight(): Tensor {
    return this.base_layer.denseWeight();
  }

  protected override writeBaseWeight(w: Tensor): void {
    this.base_layer.setDenseWeight(w);
  }

  /**
   * Re-creates an adapter at rank `rank` keeping the rows/columns `kept` of the current tensors and
   * restoring `ranknum` (PEFT adalora/model.py `resize_modules_by_rank_pattern`). Used when loading a trimmed
   * adapter: the scale stays `alpha / (initR + 1e-5)`.
   * @example layer.resizeByMask('default', [true, false, true], opts); // rank 2, ranknum unchanged
   */
  resizeByMask(adapter: string, kept: boolean[], opts: SvdAdapterOptions): void {
    const r = this.r.get(adapter);
    if (r === undefined)
      throw new ConfigError(
        'SVDLinear.resizeByMask',
        'no such adapter in this layer',
        adapter,
        'add the adapter first',
      );
    if (kept.length !== r) {
      throw new ShapeError(
        'SVDLinear.resizeByMask',
        `rank pattern length differs from the layer rank ${r}`,
        kept.length,
        'use the pattern saved with this adapter',
      );
    }
    const idx = kept.flatMap((k, i) => (k ? [i] : []));
    const rank = idx.length;
    const oldRanknum = tf.clone(this.ranknum.get(adapter)!);
    const [e, a, b] = tf.tidy(() => {
      const ii = tf.tensor1d(idx, 'int32');
      return [
        tf.gather(this.lora_E.get(adapter)!, ii, 0),
        tf.gather(this.lora_A.get(adapter)!, ii, 0),
        tf.gather(this.lora_B.get(adapter)!, ii, 1),
      ];
    });
    this.updateLayer(adapter, { ...opts, r: rank });
    if (rank > 0) {
      this.lora_E.get(adapter)!.assign(e);
      this.lora_A.get(adapter)!.assign(a);
      this.lora_B.get(adapter)!.assign(b);
    }
    // PEFT restores ranknum only when rank > 0; a rank-0 layer adds nothing either way, and keeping
    // initR everywhere makes every loaded layer's scale alpha / (initR + 1e-5).
    this.ranknum.get(adapter)!.assign(oldRanknum);
    [e, a, b, oldRanknum].forEach((t) => t.dispose());
  }
}

/**
 * AdaLoRA's `_create_new_module` (PEFT adalora/model.py): an `SVDLinear` for a linear-like target; Embedding
 * and anything else are rejected with a clear error. The layer takes `fanInFanOut` from the base module
 * (GPT-2's Conv1D is a `Linear` with `fanInFanOut`); returns whether the config's flag had to change.
 *
 * @example const { layer } = createSvdModule(model.getSubmodule('bert.encoder.layer.0.attention.self.query'), 'default', opts, false, name);
 */
export function createSvdModule(
  target: Module,
  adapter: string,
  opts: SvdAdapterOptions,
  configFanInFanOut: boolean,
  name: string,
): { layer: SVDLinear; fanInFanOut: boolean } {
  if (target instanceof BaseTunerLayer) {
    throw new ConfigError(
      `AdaLoRA target "${name}"`,
      'is already an adapter layer',
      target.constructor.name,
      'add a further adapter with updateLayer on the existing layer',
    );
  }
  const base = target;
  if (base instanceof Embedding) {
    throw new NotSupportedError(
      `AdaLoRA target "${name}"`,
      'AdaLoRA on an Embedding layer',
      'target only linear layers (e.g. query/value, q_proj/v_proj); PEFT has no AdaLoRA embedding layer either',
    );
  }
  if (!isLinearLike(base)) {
    throw new ConfigError(
      `AdaLoRA target "${name}"`,
      'is not a linear layer (AdaLoRA supports Linear, Conv1D-style Linear and 4-bit Linear)',
      base.constructor.name,
      'remove it from targetModules',
    );
  }
  // PEFT warns and flips the config flag (adalora/model.py `_create_new_module`); the layer follows the
  // module's real layout.
  const fanInFanOut = reconcileFanInFanOut(configFanInFanOut, base, name);
  return { layer: new SVDLinear(base, adapter, opts), fanInFanOut };
}
