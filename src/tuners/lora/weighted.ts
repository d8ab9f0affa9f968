/**
 * Combining LoRA adapters into a new one: PEFT's `add_weighted_adapter` (peft lora/model.py,
 * `_check_add_weighted_adapter`, `_generalized_task_arithmetic_weighted_adapter`,
 * `_svd_generalized_task_arithmetic_weighted_adapter`) for `combinationType` 'linear' | 'cat' | 'svd'.
 *
 * Per adapter i with weight wᵢ and scaling sᵢ, on every layer holding it (new adapter: alpha = r, so
 * scaling 1):
 *  - `cat`:    A = [w₁s₁A₁; w₂s₂A₂; …] (rows), B = [B₁ B₂ …] (columns), r = Σ rᵢ, so
 *              ΔW = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly. With weights 1 this is "two low-rank updates B₁A₁ + B₂A₂"
 *              — the same as both adapters active together. (Some write-ups call that "DoRA"; it is not:
 *              DoRA re-normalises the weight, lora/dora.ts.)
 *  - `linear`: A = Σ wᵢ√sᵢ·Aᵢ, B = Σ wᵢ√sᵢ·Bᵢ (all ranks equal): a blend of the factors, NOT of the
 *              deltas (cross terms BᵢAⱼ appear), as PEFT does.
 *  - `svd`:    ΔW = Σ wᵢ·ΔWᵢ, truncated SVD to `svdRank` (default max rᵢ): B = U·diag(S), A = Vᵀ.
 * A single adapter always uses `linear` (PEFT). AdaLoRA and DoRA adapters are rejected.
 *
 * @example
 * addWeightedAdapter(loraModel, ['a', 'b'], [1, 1], 'a_plus_b', 'cat');
 * loraModel.setAdapter('a_plus_b'); // output = both 'a' and 'b' active
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { readDataSync } from '../../tensor/read.js';
import { svd } from '../../tensor/linalg.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import type { LoraModel } from './model.js';
import { LoraLayer, LoraLinear } from './layer.js';

export type CombinationType = 'linear' | 'cat' | 'svd';

export interface WeightedAdapterOptions {
  /** Rank of the `svd` combination (default: the largest rank among the adapters). */
  svdRank?: number;
}

const W = 'addWeightedAdapter';

/** PEFT `_check_add_weighted_adapter`: existence, combination rules, ranks, target modules. */
function checkAndPlan(
  model: LoraModel,
  adapters: string[],
  weights: number[],
  combinationType: CombinationType,
  opts: WeightedAdapterOptions,
): { type: CombinationType; rank: number; targetModules: string[] | string } {
  if (adapters.length === 0)
    throw new ConfigError(W, 'needs at least one adapter', adapters, 'pass adapter names');
  if (weights.length !== adapters.length) {
    throw new ConfigError(
      W,
      'needs one weight per adapter',
      { adapters: adapters.length, weights: weights.length },
      'pass as many weights as adapters',
    );
  }
  const configs = adapters.map((a) => {
    const c = model.peftConfig.get(a);
    if (!c)
      throw new ConfigError(
        W,
        'unknown adapter',
        a,
        `use one of ${JSON.stringify([...model.peftConfig.keys()])}`,
      );
    return c;
  });
  for (const [i, c] of configs.entries()) {
    if (c.peftType !== 'LORA') {
      throw new ConfigError(
        W,
        `works on LoRA adapters only, and "${adapters[i]}" is ${c.peftType}`,
        c.peftType,
        'AdaLoRA adapters have SVD-form factors and per-adapter rank budgets; merge them into the base instead',
      );
    }
    if (c.useDora)
      throw new NotSupportedError(
        W,
        `combining DoRA adapters ("${adapters[i]}")`,
        'combine plain LoRA adapters',
      );
    if (Object.keys(c.rankPattern ?? {}).length > 0 || Object.keys(c.alphaPattern ?? {}).length > 0) {
      throw new NotSupportedError(
        W,
        `combining adapters with rankPattern/alphaPattern ("${adapters[i]}")`,
        'use adapters with one rank per adapter',
      );
    }
    if ((c.modulesToSave ?? []).length > 0) {
      throw new NotSupportedError(
        W,
        `combining adapters with modulesToSave ("${adapters[i]}")`,
        'combine adapters without modulesToSave',
      );
    }
  }
  const type = adapters.length === 1 ? 'linear' : combinationType;
  const ranks = configs.map((c) => c.r);
  let rank: number;
  if (type === 'linear') {
    if (new Set(ranks).size !== 1)
      throw new ConfigError(
        W,
        "'linear' needs every adapter to have the same r",
        ranks,
        "use 'cat' or 'svd'",
      );
    rank = ranks[0]!;
  } else if (type === 'cat') {
    rank = ranks.reduce((a, b) => a + b, 0);
  } else if (type === 'svd') {
    rank = opts.svdRank ?? Math.max(...ranks);
    if (!Number.isInteger(rank) || rank <= 0)
      throw new ConfigError(W, 'svdRank must be a positive integer', rank);
  } else {
    throw new ConfigError(W, "combinationType must be 'linear', 'cat' or 'svd'", combinationType);
  }
  const kinds = new Set(
    configs.map((c) =>
      typeof c.targetModules === 'string' ? 'str' : Array.isArray(c.targetModules) ? 'list' : 'none',
    ),
  );
  if (kinds.size !== 1 || kinds.has('none')) {
    throw new ConfigError(
      W,
      'every adapter must give targetModules the same way (all lists or all regex strings)',
      [...kinds],
      'recreate the adapters with explicit targetModules',
    );
  }
  const targetModules = kinds.has('str')
    ? configs.map((c) => `(${c.targetModules as string})`).join('|')
    : [...new Set(configs.flatMap((c) => c.targetModules as string[]))].sort();
  return { type, rank, targetModules };
}

/**
 * Adds adapter `name` combining `adapters` with `weights` (see the file comment). The new adapter is
 * added inactive and frozen, like PEFT; `setAdapter(name)` to use it. A name that exists already is
 * left alone (PEFT returns silently; we say so with an error instead of doing nothing).
 */
export function addWeightedAdapter(
  model: LoraModel,
  adapters: string[],
  weights: number[],
  name: string,
  combinationType: CombinationType = 'svd',
  opts: WeightedAdapterOptions = {},
): void {
  if (model.peftConfig.has(name))
    throw new ConfigError(W, 'an adapter with this name exists', name, 'pick another name');
  const plan = checkAndPlan(model, adapters, weights, combinationType, opts);
  const first = model.peftConfig.get(adapters[0]!)!;
  const config = first.clone({ r: plan.rank, loraAlpha: plan.rank, targetModules: plan.targetModules });
  model.addAdapter(name, config);
  for (const [path, layer] of model.tunerLayers()) {
    if (!(layer instanceof LoraLayer) || !layer.adapterNames().includes(name)) continue;
    if (!(layer instanceof LoraLinear))
      throw new NotSupportedError(
        `${W} at "${path}"`,
        `combining adapters on ${layer.constructor.name}`,
        'target linear layers only',
      );
    const present = adapters
      .map((a, i) => [a, weights[i]!] as const)
      .filter(([a]) => layer.adapterNames().includes(a));
    if (present.length === 0) continue; // the new adapter stays zero here (B = 0)
    const [A, B] = combineLayer(layer, present, plan.type, plan.rank);
    layer.lora_A.get(name)!.weight.assign(A);
    layer.lora_B.get(name)!.weight.assign(B);
    tf.dispose([A, B]);
  }
}

/** New A [r, in] and B [out, r] for one layer. Caller disposes. */
function combineLayer(
  layer: LoraLinear,
  present: (readonly [string, number])[],
  type: CombinationType,
  rank: number,
): [Tensor, Tensor] {
  const A = (a: string) => layer.lora_A.get(a)!.weight;
  const B = (a: string) => layer.lora_B.get(a)!.weight;
  const s = (a: string) => layer.scalingOf(a);
  if (type === 'cat') {
    return tf.tidy(() => {
      const As = present.map(([a, w]) => tf.mul(A(a), w * s(a)));
      const Bs = present.map(([a]) => B(a));
      const catA = tf.concat(As, 0); // [Σr_present, in]
      const catB = tf.concat(Bs, 1); // [out, Σr_present]
      const missing = rank - catA.shape[0]!; // adapters absent from this layer leave zero rows
      return missing === 0
        ? [catA, catB]
        : [
            tf.pad(catA, [
              [0, missing],
              [0, 0],
            ]),
            tf.pad(catB, [
              [0, 0],
              [0, missing],
            ]),
          ];
    });
  }
  if (type === 'linear') {
    return tf.tidy(() => [
      tf.addN(present.map(([a, w]) => tf.mul(A(a), w * Math.sqrt(s(a))))),
      tf.addN(present.map(([a, w]) => tf.mul(B(a), w * Math.sqrt(s(a))))),
    ]);
  }
  return svdCombine(layer, present, rank);
}

/** `svd`: ΔW = Σ wᵢΔWᵢ ([out, in] orientation), truncated SVD → A = Vᵀ[:r], B = U[:, :r]·diag(S[:r]). */
function svdCombine(
  layer: LoraLinear,
  present: (readonly [string, number])[],
  rank: number,
): [Tensor, Tensor] {
  const delta = tf.tidy(() => {
    const d = tf.addN(present.map(([a, w]) => tf.mul(layer.getDeltaWeight(a), w)));
    return layer.fanInFanOut ? d.transpose() : d; // [out, in]
  });
  const [m, n] = delta.shape as [number, number];
  const { U, S, Vt, k } = svd(
    Float64Array.from(readDataSync(delta, 'addWeightedAdapter (svd)', 'combine adapters on a CPU backend')),
    m,
    n,
  );
  delta.dispose();
  const r = Math.min(rank, k);
  const a = new Float32Array(rank * n); // rows beyond k (rank > min(m, n)) stay zero
  const b = new Float32Array(m * rank);
  for (let i = 0; i < r; i++) for (let j = 0; j < n; j++) a[i * n + j] = Vt[i * n + j]!;
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) b[i * rank + j] = U[i * k + j]! * S[j]!;
  return [tf.tensor2d(a, [rank, n]), tf.tensor2d(b, [m, rank])];
}
