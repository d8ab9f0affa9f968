/**
 * Exact trainable-parameter counts per method and the solver that picks each method's rank for a
 * parameter budget (issue 7: methods compared at matched counts, within 10%).
 *
 * Counts are over the adapter only; the task head (`score`, trained by every method on SEQ_CLS tasks
 * as PEFT's `modules_to_save`) is reported separately. Per adapted linear layer (in → out):
 *   - LoRA (and QLoRA, Prune-LoRA's final doublets): r·(in + out)            (A [r, in], B [out, r])
 *   - DoRA: r·(in + out) + out                                             (+ magnitude vector)
 *   - AdaLoRA / SVD-LoRA: r·(in + out + 1)                                 (P, Q and the diagonal Λ)
 * AdaLoRA and Prune-LoRA are matched on their *final* rank budget (Σ kept ranks = targetR × layers),
 * as in the paper; they start from ceil(initRFactor × targetR) and prune down.
 */
import type { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { MethodName } from './suite.js';

export const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
export const QV = ['q_proj', 'v_proj'];

/** In/out features of one linear layer that a target list selects. */
export interface LinearShape {
  path: string;
  inFeatures: number;
  outFeatures: number;
}

/**
 * The linear layers whose leaf name is in `targets`, skipping the model's output heads.
 * @example targetShapes(llama, QV).length; // 2 × layers
 */
export function targetShapes(model: Module, targets: string[]): LinearShape[] {
  const heads = new Set(
    (model as Partial<{ outputModuleNames(): string[] }>).outputModuleNames?.call(model) ?? [],
  );
  return model
    .namedModules()
    .filter(
      ([p, m]) => m instanceof Linear && !heads.has(p) && targets.includes(p.slice(p.lastIndexOf('.') + 1)),
    )
    .map(([p, m]) => ({
      path: p,
      inFeatures: (m as Linear).inFeatures,
      outFeatures: (m as Linear).outFeatures,
    }));
}

/** Linear cost model of a method: count(r) = fixed + perRank · r. */
export interface CostModel {
  fixed: number;
  perRank: number;
}

/** The family a method's count follows. */
export function costFamily(method: MethodName): 'lora' | 'dora' | 'svd' | 'full' {
  if (method === 'full') return 'full';
  if (method === 'dora') return 'dora';
  if (method.startsWith('adalora') || method === 'svd-lora') return 'svd';
  return 'lora';
}

/**
 * Cost model of `method` on the given layers.
 * @example costModel('lora', shapes).perRank; // Σ (in + out)
 */
export function costModel(family: 'lora' | 'dora' | 'svd', shapes: LinearShape[]): CostModel {
  let perRank = 0;
  let fixed = 0;
  for (const s of shapes) {
    perRank += s.inFeatures + s.outFeatures + (family === 'svd' ? 1 : 0);
    if (family === 'dora') fixed += s.outFeatures;
  }
  return { fixed, perRank };
}

/** A solved rank: the count it gives and its relative distance from the budget. */
export interface RankChoice {
  r: number;
  count: number;
  relError: number;
  targets: string[];
}

/**
 * Smallest-error integer rank r ≥ 1 for `budget` under `cost`.
 * @example solveRank({ fixed: 0, perRank: 5780 }, 11600); // { r: 2, count: 11560, relError: -0.0034 }
 */
export function solveRank(cost: CostModel, budget: number): Omit<RankChoice, 'targets'> {
  const guess = Math.max(1, Math.round((budget - cost.fixed) / cost.perRank));
  let best = { r: guess, count: 0, relError: Infinity };
  for (const r of [guess - 1, guess, guess + 1]) {
    if (r < 1) continue;
    const count = cost.fixed + cost.perRank * r;
    const relError = (count - budget) / budget;
    if (Math.abs(relError) < Math.abs(best.relError)) best = { r, count, relError };
  }
  return best;
}

/**
 * Target lists each method may use, in order of preference: the first one whose best rank matches the
 * budget within tolerance wins. DoRA's magnitude vectors (Σ out features) can make all-linear DoRA
 * overshoot a small budget even at r = 1; it then falls back to q,v (reported in each cell's JSON).
 */
export function targetCandidates(method: MethodName): string[][] {
  if (method === 'lora-qv') return [QV];
  if (method === 'dora') return [ALL_LINEAR, QV];
  return [ALL_LINEAR];
}

/**
 * Rank and targets for `method` at `budget` on `model` (throws when no candidate is within `tol`).
 * @example chooseRank(base, 'lora-qv', 11600, 0.1); // { r: 10, count: 11200, relError: -0.034, targets: QV }
 */
export function chooseRank(model: Module, method: MethodName, budget: number, tol: number): RankChoice {
  const family = costFamily(method);
  if (family === 'full') throw new Error('internal: full fine-tuning has no rank');
  const tried: string[] = [];
  for (const targets of targetCandidates(method)) {
    const shapes = targetShapes(model, targets);
    if (shapes.length === 0) throw new Error(`no linear layer matches ${targets.join(',')}`);
    const c = solveRank(costModel(family, shapes), budget);
    if (Math.abs(c.relError) <= tol) return { ...c, targets };
    tried.push(`${targets.join(',')}: r=${c.r} gives ${c.count} (${(100 * c.relError).toFixed(1)}%)`);
  }
  throw new Error(`${method} cannot match budget ${budget} within ${100 * tol}%: ${tried.join('; ')}`);
}
