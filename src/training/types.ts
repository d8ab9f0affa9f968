/**
 * The trainer's contracts: what it needs from a model (a `PeftModel` or a plain `PreTrainedModel` for
 * full fine-tuning both fit), the AdaLoRA hook, its options and the callback events.
 */
import type { Tensor, Variable } from '../tensor/tf.js';
import type { ModelInputs, ModelOutput } from '../models/base.js';
import type { Example } from './data/dataset.js';
import type { ScheduleName } from './optim.js';
import type { MetricTask } from './metrics.js';

export interface TrainableModel {
  forward(inputs: ModelInputs): ModelOutput;
  trainableParameters(): [string, Variable][];
  train(mode?: boolean): unknown;
  eval(): unknown;
}

/** What an adaptive method (AdaLoRA) reports after an allocation step. */
export interface Allocation {
  /** Total rank budget at this step (scheduled). */
  budget: number;
  /** Ranks actually kept per adapted module (after masking). */
  ranks?: Record<string, number>;
  /** A new rank pattern was computed at this step (a budgeting-phase mask or the freeze step). */
  newPattern?: boolean;
}

/**
 * Hook for methods that act after each optimizer step (AdaLoRA's `update_and_allocate`, PEFT
 * adalora/model.py): called right after the AdamW update, before the step's gradients are disposed, with the
 * 0-based optimizer-step counter. Its state is checkpointed so resume is exact.
 */
export interface StepHook {
  afterOptimizerStep(
    step: number,
    grads: ReadonlyMap<string, Tensor>,
  ): Allocation | undefined | Promise<Allocation | undefined>;
  /** The regulariser the model adds to its loss (AdaLoRA: orthRegWeight · R), on the current weights. */
  regularizer?(): Promise<number>;
  /** Tensors to checkpoint (live references; the trainer does not dispose them). */
  stateTensors(): Map<string, Tensor>;
  /** JSON-able state to checkpoint. */
  stateJson(): unknown;
  /** Restores from a checkpoint; takes ownership of nothing (copies what it keeps). */
  loadState(tensors: Map<string, Tensor>, json: unknown): void;
}

export interface TrainerOptions {
  task: 'classification' | 'regression' | 'causal_lm';
  /** Metric set for evaluation; defaults from task (binary classification → accuracy/F1/MCC). */
  metricTask?: MetricTask;
  train: Example[];
  eval?: Example[];
  padTokenId: number;
  lr: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  schedule?: ScheduleName;
  warmupSteps?: number;
  /** Number of optimizer steps. */
  maxSteps: number;
  batchSize: number;
  /** Reshuffle the training examples every epoch (default true); false takes them in the given order. */
  shuffle?: boolean;
  evalBatchSize?: number;
  gradientAccumulationSteps?: number;
  /** Global-norm clipping threshold; 0 disables. */
  maxGradNorm?: number;
  /** Evaluate every N optimizer steps (0: only at the end). */
  evalEvery?: number;
  /** Write a resumable checkpoint every N steps (0: only at the end). */
  saveEvery?: number;
  seed: number;
  /** Stop after this many non-finite losses in a row. */
  maxNonFinite?: number;
  /** Run folder for checkpoints, best and final adapters; undefined keeps everything in memory. */
  outputDir?: string;
  /** Writes the model's adapter (PEFT files) to a folder; defaults to trainable weights as safetensors. */
  saveAdapter?: (dir: string) => Promise<void>;
  /**
   * Runs after each optimizer step. Defaults to AdaLoRA's `updateAndAllocate` hook for AdaLoRA models;
   * `null` runs none on purpose (e.g. the SVD-LoRA ablation: the triplet form without pruning).
   */
  stepHook?: StepHook | null;
}

export interface TrainLog {
  type: 'train';
  step: number;
  epoch: number;
  /** Task loss (the regulariser, if any, is in `regLoss`; their sum is what was minimised). */
  loss: number;
  /** AdaLoRA: the orthogonal regulariser's weighted value at this step. */
  regLoss?: number;
  lr: number;
  gradNorm: number;
  budget?: number;
  ranks?: Record<string, number>;
  elapsedMs: number;
}
export interface EvalLog {
  type: 'eval';
  step: number;
  loss: number;
  perplexity?: number;
  metrics: Record<string, number>;
  best: boolean;
}
export interface SkipLog {
  type: 'skip';
  step: number;
  reason: string;
  inARow: number;
}
export type LogRecord = TrainLog | EvalLog | SkipLog;

export interface TrainSummary {
  steps: number;
  finalLoss: number;
  best?: { step: number; metric: string; value: number };
  lastEval?: EvalLog;
  adapterDir?: string;
  bestDir?: string;
  resumedFrom?: number;
}

/** Listeners (the CLI's progress bar and the web page both use these). */
export interface TrainerCallbacks {
  onStep?(log: TrainLog): void;
  onEval?(log: EvalLog): void;
  onSkip?(log: SkipLog): void;
  /**
   * What the step hook reported after 0-based optimizer step `step` (AdaLoRA: the budget, the ranks
   * and whether a new pattern was computed, e.g. for a rank heatmap), before that step's `onStep`.
   */
  onAllocation?(step: number, alloc: Allocation): void;
  onLog?(log: LogRecord): void;
  onCheckpoint?(dir: string, step: number): void;
  onEnd?(summary: TrainSummary): void;
  /**
   * Awaited after each optimizer step (after `onStep`, before that step's eval and checkpoint), with
   * every tensor intact: a page can pause here (resolve later) or stop (resolve `false`: the step's
   * checkpoint is written and `train` returns, as after `requestStop`). Time spent here is not
   * counted in `TrainLog.elapsedMs`.
   */
  betweenSteps?(step: number): Promise<boolean | void>;
}
