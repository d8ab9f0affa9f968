/**
 * Builds the model (and the per-step hook) for one method at one budget, using only the library's
 * public pieces: the run floor's method builder (`src/run/methods.ts`: config, schedule defaults,
 * AdaLoRA's trainer hook), `quantizeModel` (NF4), and the Prune-LoRA hook of this folder.
 *
 * | method              | what it is                                                              |
 * |---------------------|-------------------------------------------------------------------------|
 * | full                | every base parameter trainable (reference; not budget-matched)          |
 * | lora-all            | LoRA on all linear layers                                                |
 * | lora-qv             | LoRA on q_proj, v_proj (the paper's LoRA baseline)                       |
 * | adalora             | AdaLoRA on all linear layers, initR = ceil(1.5·targetR), PEFT importance |
 * | dora                | LoRA + useDora (all-linear if the budget allows, else q,v; see budget.ts) |
 * | qlora               | base linear layers quantised to NF4 (blocksize 64), then LoRA all-linear |
 * | adalora-sensitivity | AdaLoRA, importance = smoothed sensitivity only (no uncertainty)        |
 * | adalora-magnitude   | AdaLoRA, importance = |λ|                                               |
 * | adalora-no-orth     | AdaLoRA with orthRegWeight = 0 (γ = 0)                                  |
 * | prune-lora          | LoRA all-linear at the initial rank + structured doublet pruning        |
 * | svd-lora            | AdaLoRA's PΛQ layers at rank r trained *without* the allocation hook:   |
 * |                     | no pruning ever runs (targetR = r−1 only satisfies the config check)     |
 *
 * LoRA-family scaling is the same for all: loraAlpha = 2·(initial rank), i.e. scale 2.
 */
import type { Module } from '../nn/module.js';
import type { PreTrainedModel } from '../models/base.js';
import { getPeftModel } from '../tuners/peft_model.js';
import { quantizeModel } from '../nn/linear4bit.js';
import type { StepHook } from '../training/types.js';
import { adaloraSchedule, buildAdapter, methodConfig } from '../run/methods.js';
import { chooseRank, costFamily, targetShapes, type RankChoice } from './budget.js';
import { PruneLoraHook } from './prune_lora.js';
import type { MethodName, TrainingSpec } from './suite.js';

export interface BuiltMethod {
  model: Module;
  /** `null`: no hook on purpose (SVD-LoRA must not get the Trainer's default AdaLoRA hook). */
  hook?: (StepHook & { dispose?(): void }) | null;
  /** Rank used at the start of training (AdaLoRA / Prune-LoRA: the initial rank). */
  initR?: number;
  /** Final average rank (AdaLoRA / Prune-LoRA targetR; otherwise r). */
  r?: number;
  targets?: string[];
  /** Predicted adapter parameters at the end of training (the matched count). */
  matchedCount: number;
  /** Predicted adapter parameters at the start of training (differs for AdaLoRA / Prune-LoRA). */
  initialCount: number;
  relError?: number;
  /** AdaLoRA-style schedule actually used. */
  schedule?: { tinit: number; tfinal: number; deltaT: number; totalStep: number };
}

/** AdaLoRA/Prune-LoRA schedule from the training rule (fractions of maxSteps). */
export function scheduleFor(t: TrainingSpec): {
  tinit: number;
  tfinal: number;
  deltaT: number;
  totalStep: number;
} {
  const s = adaloraSchedule(t.maxSteps, {
    tinit: t.tinitFraction ?? 0.1,
    tfinal: t.tfinalFraction ?? 0.3,
    deltaT: t.deltaTFraction ?? 0.01,
  });
  return { ...s, totalStep: t.maxSteps };
}

/**
 * Wraps `base` for `method` at `budget` adapter parameters.
 * @example const b = buildMethod(base, 'adalora', 11600, 'SEQ_CLS', suite.training, 0.1);
 */
export function buildMethod(
  base: PreTrainedModel,
  method: MethodName,
  budget: number | undefined,
  taskType: 'SEQ_CLS' | 'CAUSAL_LM',
  t: TrainingSpec,
  tol: number,
): BuiltMethod {
  if (method === 'full') {
    base.requiresGrad(true);
    const n = base.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
    return { model: base, matchedCount: n, initialCount: n };
  }
  if (budget === undefined) throw new Error(`internal: ${method} needs a budget`);
  const choice: RankChoice = chooseRank(base, method, budget, tol);
  const dropout = t.loraDropout ?? 0;
  const sched = scheduleFor(t);
  const common = { taskType, loraDropout: dropout, targetModules: choice.targets };
  const adaptive = method.startsWith('adalora') || method === 'prune-lora';
  const initR = adaptive ? Math.max(choice.r + 1, Math.ceil((t.initRFactor ?? 1.5) * choice.r)) : choice.r;
  const fam = costFamily(method);
  const startR = method === 'svd-lora' ? choice.r : initR;
  const initialCount = targetShapes(base, choice.targets).reduce(
    (s, x) =>
      s +
      startR * (x.inFeatures + x.outFeatures + (fam === 'svd' ? 1 : 0)) +
      (fam === 'dora' ? x.outFeatures : 0),
    0,
  );
  const info = {
    initR,
    r: choice.r,
    targets: choice.targets,
    matchedCount: choice.count,
    relError: choice.relError,
    initialCount,
  };

  if (method === 'lora-all' || method === 'lora-qv' || method === 'dora' || method === 'qlora') {
    if (method === 'qlora') quantizeModel(base, { quantType: 'nf4', blocksize: 64 });
    const built = buildAdapter(base, {
      ...common,
      method: method === 'dora' ? 'dora' : 'lora',
      r: choice.r,
      totalStep: t.maxSteps,
    });
    return { ...info, model: built.model };
  }
  if (method === 'prune-lora') {
    const model = buildAdapter(base, { ...common, method: 'lora', r: initR, totalStep: t.maxSteps }).model;
    return {
      ...info,
      model,
      schedule: sched,
      hook: new PruneLoraHook(model, { ...sched, targetR: choice.r }),
    };
  }
  if (method === 'svd-lora') {
    const cfg = methodConfig({
      ...common,
      method: 'adalora',
      initR: choice.r,
      r: choice.r - 1, // never used: no allocation hook runs (see the file comment)
      totalStep: t.maxSteps,
      // AdaLoraConfig's own defaults: no schedule runs
      schedule: { tinit: 0, tfinal: 0, deltaT: 1 },
      orthRegWeight: t.orthRegWeight ?? 0.5,
    });
    return { ...info, initR: choice.r, model: getPeftModel(base, cfg), hook: null };
  }
  // AdaLoRA and its importance / regulariser ablations
  const { model, hook } = buildAdapter(base, {
    ...common,
    method: 'adalora',
    initR,
    r: choice.r,
    totalStep: sched.totalStep,
    schedule: sched,
    orthRegWeight: method === 'adalora-no-orth' ? 0 : (t.orthRegWeight ?? 0.5),
    importanceMetric:
      method === 'adalora-sensitivity'
        ? 'sensitivity'
        : method === 'adalora-magnitude'
          ? 'magnitude'
          : 'sensitivity-uncertainty',
  });
  if (!hook) throw new Error('internal: AdaLoRA model without an allocation hook');
  return { ...info, model, schedule: sched, hook };
}

/**
 * Adapter parameters of a built model, split into adapter and head (`modules_to_save`) parts, by the
 * model's own trainable variables (used to check the budget solver's prediction).
 */
export function countTrainable(model: Module): { total: number; head: number; adapter: number } {
  let total = 0;
  let head = 0;
  for (const [n, p] of (
    model as unknown as { trainableParameters(): [string, { size: number }][] }
  ).trainableParameters()) {
    total += p.size;
    if (/(^|\.)(score|classifier)\./.test(n) || n.includes('modules_to_save')) head += p.size;
  }
  return { total, head, adapter: total - head };
}
