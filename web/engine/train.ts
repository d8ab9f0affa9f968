/**
 * The worker's training loop: the manual loop docs/design.md "Public API" documents (gradients → AdamW step →
 * `peft.updateAndAllocate(step, grads)` for AdaLoRA), built from the library's DataLoader, collate,
 * AdamW, schedule and clipping. It awaits {@link TrainControl.between} after every optimizer step, so
 * the page can pause (the loop waits at a step boundary with every tensor intact), resume, or stop
 * (the adapter keeps all completed steps), and it reports loss, ETA and AdaLoRA's ranks as it goes.
 *
 * Why not `Trainer`: its per-step yield uses `setImmediate` (absent in browsers), and a pause there
 * would mean ending the run and resuming from a checkpoint, which does not yet restore AdaLoRA's
 * importance statistics.
 */
import { tf, type Tensor, type Variable } from '../../src/tensor/tf.js';
import { ConfigError } from '../../src/errors.js';
import type { PeftModel } from '../../src/tuners/index.js';
import type { Example } from '../../src/training/data/dataset.js';
import { collate, DataLoader } from '../../src/training/data/loader.js';
import { AdamW, clipGradNorm, scheduleFactor } from '../../src/training/optim.js';
import type { TrainControl } from '../train_control.js';
import type { ProgressEvent } from '../protocol.js';

export interface LoopOptions {
  examples: Example[];
  task: 'causal_lm' | 'classification';
  padTokenId: number;
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Global-norm clipping threshold (0 disables). */
  maxGradNorm: number;
  /**
   * Runs after each optimizer step with that step's gradients (AdaLoRA's `updateAndAllocate`, 0-based
   * step); returns the rank budget to report, if any.
   */
  afterStep?: (step: number, grads: Map<string, Tensor>) => number | undefined | Promise<number | undefined>;
}

export interface LoopCallbacks {
  progress(e: Omit<ProgressEvent, 'type'>): void;
  /** Called after each step with the 1-based count of completed steps. */
  stepDone?(step: number): void;
}

export interface LoopResult {
  steps: number;
  finalLoss: number;
  stopped: boolean;
}

/** Warm-up fraction of the linear schedule (transformers' common 6–10%). */
const WARMUP_FRACTION = 0.06;

/**
 * Trains the active adapter of `peft` for `opts.steps` optimizer steps.
 *
 * @example
 * const r = await trainLoop(peft, { examples, task: 'causal_lm', padTokenId: 0, steps: 40, ... }, control, cbs);
 */
export async function trainLoop(
  peft: PeftModel,
  opts: LoopOptions,
  control: TrainControl,
  cbs: LoopCallbacks,
): Promise<LoopResult> {
  if (!(Number.isInteger(opts.steps) && opts.steps >= 1)) {
    throw new ConfigError('steps', 'must be an integer ≥ 1', opts.steps, 'set the number of steps');
  }
  const params: [string, Variable][] = peft.trainableParameters();
  const byVarName = new Map(params.map(([n, v]) => [v.name, n]));
  const vars = params.map(([, v]) => v);
  const loader = new DataLoader(opts.examples, Math.min(opts.batchSize, opts.examples.length), opts.seed);
  const optimizer = new AdamW(params, { lr: opts.learningRate, weightDecay: 0 });
  const schedule = {
    name: 'linear' as const,
    warmupSteps: Math.floor(opts.steps * WARMUP_FRACTION),
    totalSteps: opts.steps,
  };
  const t0 = performance.now();
  let pausedMs = 0;
  let lastLoss = NaN;
  let step = 0;
  peft.train();
  try {
    while (step < opts.steps) {
      const lr = opts.learningRate * scheduleFactor(schedule, step);
      const batch = collate(loader.next(), opts.task, opts.padTokenId);
      let lossValue: number;
      let grads: Record<string, Tensor>;
      try {
        const res = tf.variableGrads(() => {
          const out = peft.forward({
            inputIds: batch.inputIds,
            attentionMask: batch.attentionMask,
            labels: batch.labels,
            ...(batch.tokenTypeIds ? { tokenTypeIds: batch.tokenTypeIds } : {}),
          });
          if (!out.loss)
            throw new ConfigError(
              'train',
              'the model returned no loss',
              undefined,
              'internal: labels were not passed',
            );
          return out.loss as tf.Scalar;
        }, vars);
        lossValue = (await res.value.data())[0]!;
        res.value.dispose();
        grads = res.grads;
      } finally {
        tf.dispose(Object.values(batch));
      }
      if (opts.maxGradNorm > 0) {
        const clipped = await clipGradNorm(grads, opts.maxGradNorm);
        tf.dispose(Object.values(grads));
        grads = clipped.grads;
      }
      const named = new Map<string, Tensor>();
      for (const [vn, g] of Object.entries(grads)) named.set(byVarName.get(vn) ?? vn, g);
      optimizer.step(named, lr);
      let budget: number | undefined;
      try {
        budget = await opts.afterStep?.(step, named);
      } finally {
        tf.dispose(Object.values(grads));
      }
      step += 1;
      lastLoss = lossValue;
      const paused0 = performance.now();
      const elapsedMs = paused0 - t0 - pausedMs;
      cbs.progress({
        step,
        totalSteps: opts.steps,
        loss: lossValue,
        learningRate: lr,
        elapsedMs,
        etaMs: (elapsedMs / step) * (opts.steps - step),
        ...(budget !== undefined ? { budget } : {}),
      });
      cbs.stepDone?.(step);
      const goOn = step < opts.steps ? await control.between() : true;
      pausedMs += performance.now() - paused0;
      if (!goOn) return { steps: step, finalLoss: lastLoss, stopped: true };
    }
    return { steps: step, finalLoss: lastLoss, stopped: false };
  } finally {
    optimizer.dispose();
    peft.eval();
  }
}
