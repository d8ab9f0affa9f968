/**
 * The one list of fine-tuning methods and the one path from a method name to its PEFT config, its
 * AdaLoRA schedule defaults and its per-step hook. The CLI (`lowrank train`), the web page and the
 * experiment harness all build their adapters here; they only translate their own input (flags, the
 * page's form, a suite's budget) into a {@link MethodSpec}.
 *
 * | method    | what is trained                                                          |
 * |-----------|--------------------------------------------------------------------------|
 * | lora      | LoRA (Hu et al. 2021) on the target modules                              |
 * | adalora   | AdaLoRA (Zhang et al. 2023): SVD-form adapters, budget pruned on a schedule |
 * | dora      | LoRA + weight decomposition (Liu et al. 2024), PEFT's `use_dora`          |
 * | qlora     | LoRA over a 4-bit base (Dettmers et al. 2023); the caller quantises it    |
 * | hyperlora | one hypernetwork emitting LoRA weights per condition (see `run/hyperlora.ts`) |
 * | full      | every base parameter trainable                                           |
 */
import type { Module } from '../nn/module.js';
import { ConfigError } from '../errors.js';
import { getPeftModel } from '../tuners/peft_model.js';
import { LoraConfig } from '../tuners/lora/index.js';
// Importing the AdaLoRA entry registers its tuner (peftType "ADALORA").
import { AdaLoraConfig } from '../tuners/adalora/index.js';
import type { ImportanceMetric } from '../tuners/adalora/rank_allocator.js';
// registers the DoRA LoRA variant (`useDora: true` finds no variant otherwise)
import '../tuners/lora/dora.js';
import { adaloraHook } from '../training/adalora_hook.js';
import type { StepHook } from '../training/types.js';

/** Every method a front end can ask for (each front end offers the subset it supports). */
export const METHODS = ['lora', 'adalora', 'dora', 'full', 'hyperlora', 'qlora'] as const;
export type MethodName = (typeof METHODS)[number];
/** Methods whose adapter is a plain `LoraConfig` / `AdaLoraConfig` built by {@link methodConfig}. */
export type AdapterMethod = 'lora' | 'adalora' | 'dora' | 'qlora';

/**
 * Narrows a string to a method name.
 * @example isMethod('adalora'); // true
 */
export function isMethod(name: string): name is MethodName {
  return (METHODS as readonly string[]).includes(name);
}

/** An AdaLoRA schedule: warm-up steps, final steps with a frozen pattern, steps between reallocations. */
export interface AdaLoraSchedule {
  tinit: number;
  tfinal: number;
  deltaT: number;
}

/**
 * AdaLoRA schedule defaults for a run of `totalStep` steps: warm up 10% of the steps, prune during the
 * next 60%, keep the final pattern for the last 30%, reallocate ~100 times (the proportions of the
 * AdaLoRA paper's GLUE runs, §4 / appendix). `fractions` overrides a phase as a fraction of the steps.
 * @example adaloraSchedule(1000); // { tinit: 100, tfinal: 300, deltaT: 10 }
 */
export function adaloraSchedule(
  totalStep: number,
  fractions: { tinit?: number; tfinal?: number; deltaT?: number } = {},
): AdaLoraSchedule {
  return {
    tinit: Math.round((fractions.tinit ?? 0.1) * totalStep),
    tfinal: Math.round((fractions.tfinal ?? 0.3) * totalStep),
    deltaT: Math.max(
      1,
      Math.round(fractions.deltaT !== undefined ? fractions.deltaT * totalStep : totalStep / 100),
    ),
  };
}

/** What a front end says about the adapter it wants (undefined fields take the defaults named). */
export interface MethodSpec {
  method: AdapterMethod;
  taskType: 'SEQ_CLS' | 'CAUSAL_LM';
  /** LoRA/DoRA/QLoRA rank; AdaLoRA's average target rank. */
  r: number;
  /** AdaLoRA's initial rank per matrix (required for adalora). */
  initR?: number;
  /** Scaling numerator (default 2 × the starting rank: r, or initR for AdaLoRA). */
  loraAlpha?: number;
  loraDropout?: number;
  /**
   * Modules to adapt (default: the architecture's default targets). A list holding only
   * `'all-linear'` is PEFT's all-linear shorthand (PEFT only expands the bare string).
   */
  targetModules?: string[];
  /** Optimizer steps of the run (AdaLoRA's `totalStep`). */
  totalStep: number;
  /** AdaLoRA schedule; each missing phase takes {@link adaloraSchedule}'s default. */
  schedule?: Partial<AdaLoraSchedule>;
  orthRegWeight?: number;
  beta1?: number;
  beta2?: number;
  importanceMetric?: ImportanceMetric;
}

/**
 * `['all-linear']` (a front end's one-item list) → `'all-linear'`, the string PEFT expands to every
 * linear layer but the output head; any other list is a list of module names.
 * @example allLinearShorthand(['all-linear']); // 'all-linear'
 */
export function allLinearShorthand(targets: string[] | undefined): string[] | string | undefined {
  return targets?.length === 1 && targets[0]!.toLowerCase() === 'all-linear' ? 'all-linear' : targets;
}

/** `{ a: 1, b: undefined }` → `{ a: 1 }`, so a config's own defaults apply to fields not given. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

/**
 * The PEFT config for `spec`, validated by its constructor (a bad field throws the library's
 * `ConfigError` naming the config field, e.g. `AdaLoraConfig.targetR`). Cheap: front ends call it to
 * check their options before anything is loaded.
 * @example methodConfig({ method: 'adalora', taskType: 'CAUSAL_LM', r: 4, initR: 12, totalStep: 200 });
 * // AdaLoraConfig { initR: 12, targetR: 4, tinit: 20, tfinal: 60, deltaT: 2, loraAlpha: 24, ... }
 */
export function methodConfig(spec: MethodSpec): LoraConfig | AdaLoraConfig {
  const startR = spec.method === 'adalora' ? spec.initR : spec.r;
  if (startR === undefined)
    throw new ConfigError(
      'AdaLoraConfig.initR',
      'is required for AdaLoRA',
      undefined,
      'give the initial rank per matrix (above the target rank r)',
    );
  const common = defined({
    taskType: spec.taskType,
    loraAlpha: spec.loraAlpha ?? 2 * startR,
    loraDropout: spec.loraDropout,
    targetModules: allLinearShorthand(spec.targetModules),
  });
  if (spec.method === 'adalora') {
    const d = adaloraSchedule(spec.totalStep);
    return new AdaLoraConfig({
      ...common,
      ...defined({
        initR: startR,
        targetR: spec.r,
        totalStep: spec.totalStep,
        tinit: spec.schedule?.tinit ?? d.tinit,
        tfinal: spec.schedule?.tfinal ?? d.tfinal,
        deltaT: spec.schedule?.deltaT ?? d.deltaT,
        beta1: spec.beta1,
        beta2: spec.beta2,
        orthRegWeight: spec.orthRegWeight,
        importanceMetric: spec.importanceMetric,
      }),
    });
  }
  return new LoraConfig({ ...common, r: spec.r, useDora: spec.method === 'dora' });
}

/** A model wrapped for training, with the hook the Trainer runs after each optimizer step. */
export interface BuiltAdapter {
  model: Module;
  config?: LoraConfig | AdaLoraConfig;
  /** AdaLoRA: `updateAndAllocate` after each step, with checkpointable allocator state. */
  hook?: StepHook;
}

/**
 * Wraps `base` for training with `spec`; `'full'` returns the base itself with every parameter
 * trainable. QLoRA expects a base already quantised (`quantizeModel`).
 * @example const { model, hook } = buildAdapter(base, { method: 'lora', taskType: 'CAUSAL_LM', r: 8, totalStep: 100 });
 */
export function buildAdapter(base: Module, spec: MethodSpec | 'full'): BuiltAdapter {
  if (spec === 'full') return { model: base.requiresGrad(true) };
  const config = methodConfig(spec);
  const model = getPeftModel(base, config);
  const hook = adaloraHook(model);
  return { model, config, ...(hook ? { hook } : {}) };
}
