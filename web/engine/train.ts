/**
 * The page's training run through the run floor's in-memory training job (`src/run/job.ts`, on the
 * library's one `Trainer`): the page's settings become the job's trainer settings, the Trainer's
 * events become the page's `progress` / `ranks` events, and {@link TrainControl.between} is awaited
 * between steps, so the page can pause (the run waits at a step
 * boundary with every tensor intact), resume, or stop (the adapter keeps every completed step).
 * AdaLoRA's `updateAndAllocate` is the Trainer's own hook; every read is asynchronous.
 */
import { ConfigError } from '../../src/errors.js';
import type { PeftModel } from '../../src/tuners/index.js';
import type { Example } from '../../src/training/data/dataset.js';
import { trainJob, type TrainerSettings } from '../../src/run/job.js';
import type { TrainableModel } from '../../src/training/types.js';
import type { TrainControl } from '../train_control.js';
import type { ProgressEvent } from '../protocol.js';

export interface PageRun {
  examples: Example[];
  task: 'causal_lm' | 'classification';
  padTokenId: number;
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
}

export interface PageRunEvents {
  progress(e: Omit<ProgressEvent, 'type'>): void;
  /** After 0-based step `step` computed a new AdaLoRA rank pattern (and after the first step). */
  newRanks?(step: number, budget: number): void;
  /** Called after each step with the 1-based count of completed steps. */
  stepDone?(step: number): void;
}

export interface PageRunResult {
  steps: number;
  /** The task loss of the last step (AdaLoRA's regulariser apart, as the CLI reports it). */
  finalLoss: number;
  stopped: boolean;
}

/** Warm-up fraction of the linear schedule (transformers' common 6–10%). */
const WARMUP_FRACTION = 0.06;
/** Global-norm clipping threshold of the page's runs. */
const MAX_GRAD_NORM = 1;

/**
 * The trainer settings of a page run: the batch is capped at the number of examples (the page trains
 * on whatever the user pasted), a linear schedule with 6% warm-up, clipping at 1, no weight decay, no
 * evaluation and no run folder (the session saves the adapter itself).
 * @example pageTrainerSettings({ examples, task: 'causal_lm', padTokenId: 0, steps: 40, batchSize: 8, learningRate: 2e-2, seed: 0 });
 * // { lr: 0.02, weightDecay: 0, schedule: 'linear', warmupSteps: 2, maxSteps: 40, batchSize: 8, maxGradNorm: 1 }
 */
export function pageTrainerSettings(run: PageRun): TrainerSettings {
  return {
    lr: run.learningRate,
    weightDecay: 0,
    schedule: 'linear',
    warmupSteps: Math.floor(run.steps * WARMUP_FRACTION),
    maxSteps: run.steps,
    batchSize: Math.min(run.batchSize, run.examples.length),
    maxGradNorm: MAX_GRAD_NORM,
  };
}

/**
 * Trains the active adapter of `peft` for `run.steps` optimizer steps through the run floor's
 * training job. The model is left in eval mode.
 * @example const r = await trainOnPage(peft, run, control, { progress: (e) => post(e) });
 */
export async function trainOnPage(
  peft: PeftModel,
  run: PageRun,
  control: TrainControl,
  events: PageRunEvents,
): Promise<PageRunResult> {
  if (!(Number.isInteger(run.steps) && run.steps >= 1))
    throw new ConfigError('steps', 'must be an integer ≥ 1', run.steps, 'set the number of steps');
  const job = {
    model: { model: peft as unknown as TrainableModel },
    task: run.task,
    train: run.examples,
    padTokenId: run.padTokenId,
    seed: run.seed,
    trainer: pageTrainerSettings(run),
  };
  try {
    const { summary: s } = await trainJob(job, {
      onAllocation: (step, a) => {
        // the heatmap changes only when a pattern is computed (budgeting phase, freeze step)
        if (step === 0 || a.newPattern) events.newRanks?.(step, a.budget);
      },
      onStep: (l) => {
        events.progress({
          step: l.step,
          totalSteps: run.steps,
          loss: l.loss,
          ...(l.regLoss !== undefined ? { regLoss: l.regLoss } : {}),
          learningRate: l.lr,
          elapsedMs: l.elapsedMs,
          etaMs: (l.elapsedMs / l.step) * (run.steps - l.step),
          ...(l.budget !== undefined ? { budget: l.budget } : {}),
        });
        events.stepDone?.(l.step);
      },
      // after the last step there is nothing to pause for
      betweenSteps: (step) => (step < run.steps ? control.between() : Promise.resolve(true)),
    });
    return { steps: s.steps, finalLoss: s.finalLoss, stopped: s.steps < run.steps };
  } finally {
    peft.eval();
  }
}
