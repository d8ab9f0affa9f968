/**
 * Model + adapter construction shared by `train`, `eval`, `generate`, `merge` and the demo: loads the
 * base, wraps it with the chosen method, and (AdaLoRA) builds the trainer hook that runs
 * `updateAndAllocate` after each optimizer step with checkpointable allocator state.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { getPeftModel, PeftModel, LoraConfig } from '../tuners/index.js';
import { AdaLoraConfig, type AdaLoraModel } from '../tuners/adalora/index.js';
import type { StepHook } from '../training/types.js';
import { UsageError } from './args.js';

export const METHODS = ['lora', 'adalora', 'dora', 'full'] as const;
export type MethodName = (typeof METHODS)[number];

export interface AdapterOptions {
  method: MethodName;
  taskType: 'SEQ_CLS' | 'CAUSAL_LM';
  r: number;
  loraAlpha?: number;
  loraDropout: number;
  targetModules?: string[];
  initR: number;
  targetR: number;
  tinit?: number;
  tfinal?: number;
  deltaT?: number;
  orthRegWeight: number;
  totalStep: number;
}

/**
 * AdaLoRA schedule defaults for a run of `T` steps when not given: warm up 10% of the steps, prune
 * during the next 60%, keep the final pattern for the last 30%, reallocate ~100 times.
 * @example adaloraSchedule(1000); // { tinit: 100, tfinal: 300, deltaT: 10 }
 */
export function adaloraSchedule(totalStep: number): { tinit: number; tfinal: number; deltaT: number } {
  return {
    tinit: Math.round(0.1 * totalStep),
    tfinal: Math.round(0.3 * totalStep),
    deltaT: Math.max(1, Math.round(totalStep / 100)),
  };
}

/**
 * Wraps `model` for training; `full` returns the model itself with every parameter trainable.
 * @example const peft = buildAdapter(model, { method: 'adalora', ... });
 */
export function buildAdapter(model: Module, o: AdapterOptions): Module {
  if (o.method === 'full') return model.requiresGrad(true);
  const common = {
    taskType: o.taskType,
    loraAlpha: o.loraAlpha ?? (o.method === 'adalora' ? o.initR : o.r) * 2,
    loraDropout: o.loraDropout,
    ...(o.targetModules ? { targetModules: o.targetModules } : {}),
  };
  if (o.method === 'adalora') {
    const d = adaloraSchedule(o.totalStep);
    if (o.targetR > o.initR)
      throw new UsageError(`--target-r (${o.targetR}) must not exceed --init-r (${o.initR})`);
    return getPeftModel(
      model,
      new AdaLoraConfig({
        ...common,
        initR: o.initR,
        targetR: o.targetR,
        totalStep: o.totalStep,
        tinit: o.tinit ?? d.tinit,
        tfinal: o.tfinal ?? d.tfinal,
        deltaT: o.deltaT ?? d.deltaT,
        orthRegWeight: o.orthRegWeight,
      }),
    );
  }
  return getPeftModel(model, new LoraConfig({ ...common, r: o.r, useDora: o.method === 'dora' }));
}

/** `model.layers.0.self_attn.q_proj.lora_E.default` → `model.layers.0.self_attn.q_proj`. */
export function moduleOfParam(name: string): string {
  return name.replace(/\.lora_E(\.[^.]+)?$/, '');
}

/**
 * The trainer hook for AdaLoRA models (undefined for other tuners): calls the tuner's
 * `updateAndAllocate(step, grads)` and checkpoints the allocator's EMAs, the rank pattern and the call
 * count so a resumed run allocates exactly as an uninterrupted one.
 *
 * @example const hook = adaloraHook(peft); new Trainer(peft, { ..., stepHook: hook });
 */
export function adaloraHook(model: Module): StepHook | undefined {
  if (!(model instanceof PeftModel)) return undefined;
  const tuner = model.base_model as unknown as AdaLoraModel;
  if (typeof tuner.updateAndAllocate !== 'function' || !tuner.allocation) return undefined;
  const alloc = tuner.allocation;
  const cfg = alloc.config;
  const initRanks = (): Record<string, number> =>
    Object.fromEntries(
      [...alloc.params().keys()]
        .filter((n) => n.includes('lora_E'))
        .map((n) => [moduleOfParam(n), cfg.initR]),
    );
  const maps = () => ({
    ipt: alloc.allocator.ipt as Map<string, Tensor>,
    avg_ipt: alloc.allocator.expAvgIpt as Map<string, Tensor>,
    avg_unc: alloc.allocator.expAvgUnc as Map<string, Tensor>,
  });
  return {
    afterOptimizerStep(step, grads) {
      const r = tuner.updateAndAllocate(step, grads);
      const ranks = r.ranks
        ? Object.fromEntries(Object.entries(r.ranks).map(([k, v]) => [moduleOfParam(k), v]))
        : initRanks();
      return { budget: r.budget, ranks };
    },
    stateTensors() {
      const out = new Map<string, Tensor>();
      for (const [kind, m] of Object.entries(maps())) for (const [n, t] of m) out.set(`${kind}/${n}`, t);
      return out;
    },
    stateJson() {
      return { rankPattern: cfg.rankPattern ?? null, calls: alloc.calls };
    },
    loadState(tensors, json) {
      const j = json as { rankPattern: AdaLoraConfig['rankPattern']; calls: number } | undefined;
      if (!j)
        throw new ConfigError(
          'AdaLoRA resume',
          'the checkpoint has no allocator state',
          undefined,
          'resume from a checkpoint written by an AdaLoRA run',
        );
      alloc.allocator.resetIpt();
      const m = maps();
      for (const [key, t] of tensors) {
        const slash = key.indexOf('/');
        const target = m[key.slice(0, slash) as keyof typeof m];
        if (!target) throw new ConfigError('AdaLoRA resume', 'unknown allocator state tensor', key);
        target.set(key.slice(slash + 1), tf.clone(t));
      }
      cfg.rankPattern = j.rankPattern;
      alloc.calls = j.calls;
    },
  };
}
