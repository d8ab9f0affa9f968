/**
 * DoRA — weight-decomposed low-rank adaptation (Liu et al. 2024, arXiv 2402.09353), as PEFT's
 * `use_dora=True` (PEFT lora/dora.py 62-160, lora/variants.py 138-249). It is a LoRA *variant*: the
 * LoRA layer keeps A, B, dropout and scaling, and this file adds the magnitude vector and the
 * re-scaled forward/merge. No other lora/ file imports this one; importing it registers the variant
 * (the library entry does), so `new LoraConfig({ useDora: true })` layers find it (`variant.ts`).
 *
 * W' = m · (W + s·BA) / ‖W + s·BA‖_c   (paper Eq. 5; ‖·‖_c = norm of each output row)
 *
 * Not to be confused with "two stacked low-rank updates" (B1·A1 + B2·A2): that is adapter composition
 * (`addWeightedAdapter(…, 'cat')`, tuners/lora/weighted.ts), not DoRA.
 *
 * @example
 * import './dora.js'; // registers the variant (the library entry 'lowrank' does)
 * const layer = new LoraLinear(new Linear(16, 8), 'default', { r: 4, loraAlpha: 8, useDora: true });
 * layer.lora_magnitude_vector.get('default').weight; // [8] = row norms of W at init (B = 0)
 */
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { readDataSync } from '../../tensor/read.js';
import { Module } from '../../nn/module.js';
import { ModuleDict } from '../../nn/module_dict.js';
import type { Dropout, Linear } from '../../nn/layers.js';
import { ConfigError, internal } from '../../errors.js';
import type { LoraLayer, LoraLinear } from './layer.js';
import { registerLoraVariant, type LoraVariant } from './variant.js';
import { transposeIf } from '../base/layer.js';

/** Name of the dict child holding the magnitude vectors (PEFT `lora_magnitude_vector`). */
export const MAGNITUDE_DICT = 'lora_magnitude_vector';

/**
 * One adapter's magnitude vector `weight` [out] (PEFT `DoraLinearLayer`), plus the weight norm cached
 * while the adapter is merged (PEFT `_cache_store("{adapter}-weight_norm")`): unmerging must divide by
 * the norm of the ORIGINAL weight, which cannot be recomputed from the merged one.
 */
export class DoraMagnitude extends Module {
  declare weight: Variable;
  /** ‖W + Δ‖ per row at merge time, while merged. */
  mergedNorm: Float32Array | null = null;

  constructor(norm: Tensor) {
    super();
    this.registerParameter('weight', norm, true);
  }
}

/** `x` in the forward pass, no gradient in the backward pass (`tensor.detach()`). */
const detach = tf.customGrad(((x: Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]);

function asLinear(layer: LoraLayer, where: string): LoraLinear {
  if (layer.kind !== 'linear') internal(`${where}: DoRA variant called on a ${layer.kind} layer`);
  return layer as LoraLinear;
}

function magnitudeOf(layer: LoraLayer, adapter: string): DoraMagnitude {
  const dict = (layer as unknown as Record<string, ModuleDict<DoraMagnitude> | undefined>)[MAGNITUDE_DICT];
  const m = dict?.get(adapter);
  if (!m) internal(`DoRA: layer has no magnitude vector for adapter "${adapter}"`);
  return m;
}

/** Base weight as [out, in] (dequantised if the base is 4-bit; transposed from fan-in-fan-out). */
function baseWeightOutIn(layer: LoraLinear): Tensor {
  return tf.tidy(() => {
    return transposeIf(layer.base_layer.denseWeight(), layer.fanInFanOut);
  });
}

/** ‖W + s·L‖₂ along dim 1 of [out, in] → [out] (PEFT `get_weight_norm`). */
export function rowNorm(weightOutIn: Tensor, loraWeightOutIn: Tensor, scaling: number): Tensor {
  return tf.tidy(() => tf.add(weightOutIn, tf.mul(loraWeightOutIn, scaling)).square().sum(1).sqrt());
}

function loraWeight(layer: LoraLinear, adapter: string): Tensor {
  const A = layer.lora_A.get(adapter)!;
  const B = layer.lora_B.get(adapter)!;
  return tf.matMul(B.weight, A.weight); // [out, in]
}

/** The LoRA-variant implementation of DoRA for linear layers (see `lora/variant.ts` for the contract). */
export const doraLinearVariant: LoraVariant = {
  extraLayerNames: [MAGNITUDE_DICT],

  /** m = ‖W + s·B·A‖ per output row (B = 0 at a fresh init, so m = row norms of W). */
  init(layer: LoraLayer, adapter: string): void {
    const lin = asLinear(layer, 'DoRA.init');
    if (lin.loraBias.get(adapter)) {
      throw new ConfigError(
        'LoraConfig.loraBias',
        'is not supported together with useDora',
        true,
        'set loraBias: false or useDora: false',
      );
    }
    if (!lin.hasChild(MAGNITUDE_DICT)) lin.registerModule(MAGNITUDE_DICT, new ModuleDict<DoraMagnitude>());
    const norm = tf.tidy(() =>
      rowNorm(baseWeightOutIn(lin), loraWeight(lin, adapter), lin.scalingOf(adapter)),
    );
    const dict = (lin as unknown as Record<string, ModuleDict<DoraMagnitude>>)[MAGNITUDE_DICT]!;
    dict.set(adapter, new DoraMagnitude(norm));
    norm.dispose();
  },

  /**
   * `result + (f − 1)·base + f·B(A(x'))·s` with `f = m / ‖W + s·BA‖` and the norm detached (paper §4.3).
   * Without active dropout, `x' = x` and `base = result − bias` (reusing the base output, as PEFT does);
   * with dropout in training, `base = x'·Wᵀ` on the dropped-out input.
   */
  forward(layer: LoraLayer, adapter: string, x: Tensor, result: Tensor): Tensor {
    const lin = asLinear(layer, 'DoRA.forward');
    const A = lin.lora_A.get(adapter) as Linear;
    const B = lin.lora_B.get(adapter) as Linear;
    const dropout = lin.lora_dropout.get(adapter) as Dropout;
    const s = lin.scalingOf(adapter);
    const m = magnitudeOf(lin, adapter).weight; // [out]
    const reuseResult = dropout.p === 0 || !lin.training;
    const xd = reuseResult ? x : dropout.forward(x);
    const w = baseWeightOutIn(lin); // [out, in]
    const n = detach(rowNorm(w, detach(loraWeight(lin, adapter)), s)); // [out]
    const f = tf.div(m, n); // [out], broadcasts over the last axis
    const lora = B.forward(A.forward(xd)); // [.., out]
    const bias = lin.base_layer.bias;
    let base: Tensor;
    if (reuseResult) base = bias ? tf.sub(result, bias) : result;
    else base = tf.matMul(xd.reshape([-1, lin.inFeatures]), w, false, true).reshape(result.shape); // no bias
    return tf.add(result, tf.add(tf.mul(tf.sub(f, 1), base), tf.mul(tf.mul(f, lora), s)));
  },

  /** W' = (m / ‖W + Δ‖) · (W + Δ), caching the norm for `unmerge`. */
  merge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const lin = asLinear(layer, 'DoRA.merge');
    const delta = lin.getDeltaWeight(adapter); // storage layout, scaling included
    const sum = tf.add(weight, delta);
    const sumOutIn = transposeIf(sum, lin.fanInFanOut);
    const norm = sumOutIn.square().sum(1).sqrt(); // [out]
    const mag = magnitudeOf(lin, adapter);
    mag.mergedNorm = Float32Array.from(
      readDataSync(norm, 'DoRA merge', 'merge on a CPU backend') as Float32Array,
    );
    return tf.mul(sum, factorInLayout(lin, tf.div(mag.weight, norm)));
  },

  /** W = W' / (m / n_cached) − Δ. */
  unmerge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor {
    const lin = asLinear(layer, 'DoRA.unmerge');
    const mag = magnitudeOf(lin, adapter);
    if (!mag.mergedNorm)
      internal(`DoRA.unmerge: adapter "${adapter}" has no cached weight norm (was it merged?)`);
    const factor = tf.div(mag.weight, tf.tensor1d(mag.mergedNorm));
    mag.mergedNorm = null;
    return tf.sub(tf.div(weight, factorInLayout(lin, factor)), lin.getDeltaWeight(adapter));
  },
};

/** A per-output-row factor [out] shaped to scale the weight in storage layout. */
function factorInLayout(layer: LoraLinear, factor: Tensor): Tensor {
  return layer.fanInFanOut ? factor.reshape([1, -1]) : factor.reshape([-1, 1]);
}

registerLoraVariant('dora', 'linear', doraLinearVariant);
