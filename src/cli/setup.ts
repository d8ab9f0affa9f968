/**
 * Model + adapter construction shared by `train`, `eval`, `generate`, `merge` and the demo: loads the
 * base, wraps it with the chosen method, and (AdaLoRA) builds the trainer hook that runs
 * `updateAndAllocate` after each optimizer step with checkpointable allocator state.
 */
import type { Module } from '../nn/module.js';
import { getPeftModel, LoraConfig } from '../tuners/index.js';
import { AdaLoraConfig } from '../tuners/adalora/index.js';
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
 * The PEFT config for `o` (validated by its constructor: a bad field throws the library's ConfigError,
 * which the CLI maps to the flag), or undefined for full fine-tuning. Cheap: used to check the options
 * before anything is loaded.
 * @example adapterConfig({ method: 'lora', r: 8, ... }); // LoraConfig
 */
export function adapterConfig(o: AdapterOptions): LoraConfig | AdaLoraConfig | undefined {
  if (o.method === 'full') return undefined;
  const common = {
    taskType: o.taskType,
    loraAlpha: o.loraAlpha ?? (o.method === 'adalora' ? o.initR : o.r) * 2,
    loraDropout: o.loraDropout,
    ...(o.targetModules ? { targetModules: o.targetModules } : {}),
  };
  if (o.method === 'adalora') {
    const d = adaloraSchedule(o.totalStep);
    if (o.targetR >= o.initR)
      throw new UsageError(`--target-r (${o.targetR}) must be below --init-r (${o.initR})`);
    return new AdaLoraConfig({
      ...common,
      initR: o.initR,
      targetR: o.targetR,
      totalStep: o.totalStep,
      tinit: o.tinit ?? d.tinit,
      tfinal: o.tfinal ?? d.tfinal,
      deltaT: o.deltaT ?? d.deltaT,
      orthRegWeight: o.orthRegWeight,
    });
  }
  return new LoraConfig({ ...common, r: o.r, useDora: o.method === 'dora' });
}

/**
 * Wraps `model` for training; `full` returns the model itself with every parameter trainable.
 * @example const peft = buildAdapter(model, { method: 'adalora', ... });
 */
export function buildAdapter(model: Module, o: AdapterOptions): Module {
  const config = adapterConfig(o);
  return config ? getPeftModel(model, config) : model.requiresGrad(true);
}
