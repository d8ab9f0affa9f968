/**
 * AdamW with PyTorch's exact update (torch.optim.AdamW, single-tensor path, amsgrad off) and explicit,
 * serialisable state: slot variables named `<param>/m` and `<param>/v` plus the step count, so a
 * checkpoint can hold the optimizer and a resumed run continues bit for bit (docs/design.md "Errors, memory,
 * determinism").
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { CheckpointError, ConfigError } from '../errors.js';
import { adamwUpdateAll } from '../tensor/ops/adamw.js';
import { readScalar } from '../tensor/read.js';

export interface AdamWOptions {
  /** Base learning rate (a schedule scales it per step). */
  lr: number;
  /** (beta1, beta2); PyTorch default (0.9, 0.999). */
  betas?: [number, number];
  /** Added after the square root of v̂; PyTorch default 1e-8. */
  eps?: number;
  /** Decoupled weight decay: `p -= lr·wd·p` before the Adam step; PyTorch default 0.01. */
  weightDecay?: number;
}

/**
 * Decoupled-weight-decay Adam over named variables.
 *
 * @example
 * const opt = new AdamW(model.trainableParameters(), { lr: 1e-3 });
 * const { grads } = tf.variableGrads(() => lossFn(), vars);
 * opt.step(grads); tf.dispose(grads);
 */
/**
 * Parameter elements updated per native AdamW call (16 MB of float32 per state array): all of a
 * LoRA adapter's parameters in one call, a full model in slices of this size.
 */
const ADAMW_GROUP_ELEMENTS = 1 << 22;

export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of completed steps (PyTorch's `state['step']`). */
  stepCount = 0;
  private readonly params: [string, Variable][];
  private readonly m = new Map<string, Variable>();
  private readonly v = new Map<string, Variable>();

  constructor(params: [string, Variable][], options: AdamWOptions) {
    const { lr, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01 } = options;
    if (!(lr >= 0))
      throw new ConfigError('AdamW.lr', 'must be >= 0', lr, 'pass a non-negative learning rate');
    for (const b of betas) {
      if (!(b >= 0 && b < 1))
        throw new ConfigError('AdamW.betas', 'each beta must be in [0, 1)', betas, 'use e.g. [0.9, 0.999]');
    }
    if (!(eps >= 0)) throw new ConfigError('AdamW.eps', 'must be >= 0', eps, 'use e.g. 1e-8');
    if (!(weightDecay >= 0))
      throw new ConfigError('AdamW.weightDecay', 'must be >= 0', weightDecay, 'use 0 to disable');
    const seen = new Set<string>();
    for (const [name] of params) {
      if (seen.has(name))
        throw new ConfigError(
          'AdamW.params',
          'parameter names must be unique',
          name,
          'pass each variable once',
        );
      seen.add(name);
    }
    this.lr = lr;
    [this.beta1, this.beta2] = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.params = params;
    for (const [name, p] of params) {
      this.m.set(name, zeroSlot(p));
      this.v.set(name, zeroSlot(p));
    }
  }

  /** Names of the parameters this optimizer updates, in order. */
  paramNames(): string[] {
    return this.params.map(([n]) => n);
  }

  /**
   * One update. `grads` maps parameter name (or the variable's own name, as `tf.variableGrads`
   * returns) to gradient; parameters without a gradient are skipped, as PyTorch skips `grad is None`.
   * The caller keeps ownership of `grads`.
   */
  step(grads: Record<string, Tensor> | Map<string, Tensor>, lr = this.lr): void {
    const get = (name: string, p: Variable): Tensor | undefined =>
      grads instanceof Map ? (grads.get(name) ?? grads.get(p.name)) : (grads[name] ?? grads[p.name]);
    this.stepCount += 1;
    const t = this.stepCount;
    // torch.optim.AdamW single-tensor path: decoupled decay, moment updates, bias-corrected step;
    // one fused kernel per group of parameters on the native backend, the composed ops elsewhere
    // (tensor/ops/adamw.ts). Groups stay below ADAMW_GROUP_ELEMENTS so that the new p/m/v arrays
    // of a group and the old ones they replace coexist only for that group (bounded extra memory).
    const hyper = {
      lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      step: t,
    };
    let group: { p: Variable; g: Tensor; m: Variable; v: Variable }[] = [];
    let size = 0;
    const flush = () => {
      const items = group;
      tf.tidy(() => {
        const next = adamwUpdateAll(
          items.map((x) => x.p),
          items.map((x) => x.g),
          items.map((x) => x.m),
          items.map((x) => x.v),
          hyper,
        );
        items.forEach(({ p, m, v }, i) => {
          m.assign(next[i]!.m);
          v.assign(next[i]!.v);
          p.assign(next[i]!.p);
        });
      });
      group = [];
      size = 0;
    };
    for (const [name, p] of this.params) {
      const g = get(name, p);
      if (!g) continue;
      if (group.length > 0 && size + p.size > ADAMW_GROUP_ELEMENTS) flush();
      group.push({ p, g, m: this.m.get(name)!, v: this.v.get(name)! });
      size += p.size;
    }
    if (group.length > 0) flush();
  }

  /** Slot variables as `<param>/m`, `<param>/v` (live references; do not dispose). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name] of this.params) {
      out.set(`${name}/m`, this.m.get(name)!);
      out.set(`${name}/v`, this.v.get(name)!);
    }
    return out;
  }

  /** Restores slots and step count from {@link stateTensors} output; strict about names and shapes. */
  loadState(slots: Map<string, Tensor>, stepCount: number): void {
    for (const [name, p] of this.params) {
      for (const [suffix, store] of [
        ['m', this.m],
        ['v', this.v],
      ] as const) {
        const key = `${name}/${suffix}`;
        const t = slots.get(key);
        if (!t)
          throw new CheckpointError(
            'AdamW.loadState',
            'missing optimizer slot',
            key,
            'resume from a checkpoint written by the same configuration',
          );
        if (t.shape.join(',') !== p.shape.join(',')) {
          throw new CheckpointError(
            'AdamW.loadState',
            `slot ${key} has the wrong shape`,
            t.shape,
            `expected [${p.shape.join(', ')}]`,
          );
        }
        store.get(name)!.assign(t);
      }
    }
    const expected = this.params.length * 2;
    if (slots.size !== expected) {
      const known = new Set(this.stateTensors().keys());
      const extra = [...slots.keys()].filter((k) => !known.has(k));
      throw new CheckpointError(
        'AdamW.loadState',
        'unexpected optimizer slots',
        extra.slice(0, 5),
        'the checkpoint was written for other trainable parameters',
      );
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const s of [this.m, this.v]) for (const t of s.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

function zeroSlot(p: Variable): Variable {
  const z = tf.zerosLike(p);
  const slot = tf.variable(z, false, undefined, 'float32');
  z.dispose(); // the variable holds its own reference to the buffer
  return slot;
}

/** Learning-rate schedules, with transformers' `get_*_schedule_with_warmup` formulas. */
export type ScheduleName = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';
export const SCHEDULES: readonly ScheduleName[] = ['constant', 'constant_with_warmup', 'linear', 'cosine'];

export interface ScheduleOptions {
  name: ScheduleName;
  warmupSteps?: number;
  totalSteps?: number;
}

/**
 * The multiplier for the base LR at 0-based optimizer step `step` (what `LambdaLR` applies at
 * that step), identical to transformers' schedules (cosine with `num_cycles = 0.5`).
 *
 * @example
 * scheduleFactor({ name: 'linear', warmupSteps: 10, totalSteps: 100 }, 5); // 0.5
 */
export function scheduleFactor(opts: ScheduleOptions, step: number): number {
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps ?? 0;
  switch (opts.name) {
    case 'constant':
      return 1;
    case 'constant_with_warmup':
      return step < warmup ? step / Math.max(1, warmup) : 1;
    case 'linear':
      if (step < warmup) return step / Math.max(1, warmup);
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      if (step < warmup) return step / Math.max(1, warmup);
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    default:
      throw new ConfigError(
        'schedule.name',
        'unknown schedule',
        opts.name,
        `use one of ${SCHEDULES.join(', ')}`,
      );
  }
}

/**
 * `torch.nn.utils.clip_grad_norm_(params, maxNorm)` (norm_type 2): resolves to the global L2 norm
 * before clipping and new gradients scaled by `min(1, maxNorm / (norm + 1e-6))`. The coefficient is
 * computed on the device in float32 as torch does (`clip_coef_clamped`), so nothing is read back
 * before the scaled gradients exist; the norm (for logging) is read asynchronously, which a GPU
 * backend needs (src/tensor/read.ts). The input tensors are not disposed; the returned ones belong
 * to the caller.
 *
 * @example
 * const { grads: clipped, norm } = await clipGradNorm(grads, 1.0);
 */
export async function clipGradNorm(
  grads: Record<string, Tensor>,
  maxNorm: number,
): Promise<{ grads: Record<string, Tensor>; norm: number }> {
  const names = Object.keys(grads);
  const { norm, coef } = tf.tidy(() => {
    // total_norm = norm(stack([norm(g) for g in grads]))
    const total = names.length === 0 ? tf.scalar(0) : tf.norm(tf.stack(names.map((n) => tf.norm(grads[n]!))));
    const c = tf.minimum(tf.div(tf.scalar(maxNorm), tf.add(total, tf.scalar(1e-6))), tf.scalar(1));
    return { norm: total, coef: c };
  });
  const out: Record<string, Tensor> = {};
  for (const n of names) out[n] = tf.mul(grads[n]!, coef);
  coef.dispose();
  try {
    return { grads: out, norm: await readScalar(norm) };
  } finally {
    norm.dispose();
  }
}

/**
 * The global L2 norm of `grads` (no clipping), read asynchronously; for logging.
 * @example const gradNorm = await globalGradNorm(grads);
 */
export async function globalGradNorm(grads: Record<string, Tensor>): Promise<number> {
  const names = Object.keys(grads);
  if (names.length === 0) return 0;
  const norm = tf.tidy(() => tf.norm(tf.stack(names.map((n) => tf.norm(grads[n]!)))));
  try {
    return await readScalar(norm);
  } finally {
    norm.dispose();
  }
}

/**
 * Gradient accumulation as the HF Trainer does it (loss / N per micro-batch, gradients summed):
 * `add` takes ownership-free views of each micro-batch's gradients, `take` returns the sum.
 *
 * @example
 * const acc = new GradAccumulator(4); for (const g of micro) acc.add(g); const grads = acc.take();
 */
export class GradAccumulator {
  private sum: Record<string, Tensor> = {};
  private count = 0;
  constructor(readonly steps: number) {
    if (!(Number.isInteger(steps) && steps >= 1)) {
      throw new ConfigError(
        'gradientAccumulationSteps',
        'must be an integer >= 1',
        steps,
        'use 1 to disable accumulation',
      );
    }
  }
  /** Adds one micro-batch's gradients scaled by 1/steps (the caller still owns `grads`). */
  add(grads: Record<string, Tensor>): void {
    for (const [n, g] of Object.entries(grads)) {
      const scaled = tf.tidy(() => g.mul(tf.scalar(1 / this.steps)));
      const prev = this.sum[n];
      if (prev) {
        this.sum[n] = tf.tidy(() => prev.add(scaled));
        prev.dispose();
        scaled.dispose();
      } else this.sum[n] = scaled;
    }
    this.count += 1;
  }
  /** True once `steps` micro-batches were added. */
  ready(): boolean {
    return this.count >= this.steps;
  }
  /** Returns the accumulated gradients (caller owns them) and resets. */
  take(): Record<string, Tensor> {
    const out = this.sum;
    this.sum = {};
    this.count = 0;
    return out;
  }
  dispose(): void {
    tf.dispose(Object.values(this.sum));
    this.sum = {};
    this.count = 0;
  }
}
