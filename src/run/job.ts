/**
 * The training job's in-memory core: a model (a base plus a method name, or a model the caller has
 * already wrapped) and encoded examples in, a trained model and its summary out, through the
 * library's one `Trainer`. Browser-safe: no `node:*` import, no file, no run folder (the test
 * `tests/import_floors.test.ts` keeps it so). Every front end trains through it:
 *
 * | caller                                   | model it gives                          | what it adds around the core      |
 * |------------------------------------------|-----------------------------------------|-----------------------------------|
 * | `runTrainingJob` (`lowrank train`, demo) | base + method, or its HyperLoRA model   | paths, run folder, resume, report |
 * | the harness (`src/harness/cell.ts`)      | its budget-matched model and step hook  | metrics record                    |
 * | the web worker (`web/engine/train.ts`)   | the page's named `PeftModel`            | pause/stop, progress, heatmap     |
 * | `experiments/*.ts`                       | their own `PeftModel` / HyperLoRA model | tables                            |
 */
import type { Module } from '../nn/module.js';
import { setGradientCheckpointing } from '../nn/checkpoint.js';
import { setChunkedLoss } from '../models/chunked_head.js';
import { Trainer } from '../training/trainer.js';
import type { Example } from '../training/data/dataset.js';
import type {
  StepHook,
  TrainableModel,
  TrainerCallbacks,
  TrainerOptions,
  TrainSummary,
} from '../training/types.js';
import { buildAdapter, type MethodSpec } from './methods.js';

/**
 * Where the job's model comes from: `base` wrapped with `method` here (`run/methods.ts`: the PEFT
 * config, AdaLoRA's schedule defaults and its step hook), or `model` as the caller built it, trained
 * with `stepHook` (undefined: the Trainer's default, AdaLoRA's hook for AdaLoRA models; null: none).
 * Either way the caller owns the weights: the adapter is injected into `base` in place, and disposing
 * `base.parameters()` (or the given model's) frees it.
 */
export type JobModel =
  { base: Module; method: MethodSpec | 'full' } | { model: TrainableModel; stepHook?: StepHook | null };

/** The Trainer's optimisation settings (everything but the data, the seed, the model and the files). */
export type TrainerSettings = Omit<
  TrainerOptions,
  'task' | 'train' | 'eval' | 'padTokenId' | 'seed' | 'outputDir' | 'saveAdapter' | 'stepHook'
>;

/**
 * Memory savers for large models (same losses and gradients within f32 summation order):
 * `gradientCheckpointing` recomputes each decoder layer in backward (HF
 * `gradient_checkpointing_enable`); `chunkedLoss` never builds the [B·T, vocab] logits of a causal-LM
 * step. Decoder families that lack the hook, and wrapped or soft-capped heads, run as before.
 */
export interface MemorySavers {
  gradientCheckpointing: boolean;
  chunkedLoss: boolean;
}

/** One training run in memory. */
export interface TrainJob {
  model: JobModel;
  task: TrainerOptions['task'];
  train: Example[];
  /** Evaluated every `trainer.evalEvery` steps and after the last one. */
  eval?: Example[];
  padTokenId: number;
  trainer: TrainerSettings;
  /** Fixes dropout and shuffling (the caller seeds initialisation before it builds or loads weights). */
  seed: number;
  memory?: MemorySavers;
  /** Aborting finishes the current step (writing its checkpoint when there is an output folder) and returns. */
  signal?: AbortSignal;
  /**
   * Checkpoints, `best/` and the final adapter go to `dir` (the file wrapper's run folder); absent,
   * everything stays in memory. `saveAdapter` writes the trained model's files (default: the
   * trainable weights as one safetensors file).
   */
  output?: { dir: string; saveAdapter?: (dir: string, model: TrainableModel) => Promise<void> };
}

/** The model as built, before the first step. */
export interface JobReady {
  model: TrainableModel;
  trainableParams: number;
}

/** Where training starts: a checkpoint folder to restore first (undefined: step 0). */
export interface JobStartPoint {
  resumeFrom?: string;
}

/** The Trainer's events, and one hook before training starts. */
export interface TrainJobEvents extends Omit<TrainerCallbacks, 'onEnd'> {
  /**
   * Runs once the model is built and the Trainer has checked its options, before the first step;
   * resolving `{ resumeFrom }` restores that checkpoint folder first (exact resume). The file wrapper
   * writes its run folder here.
   */
  beforeTraining?(ready: JobReady): Promise<JobStartPoint | void> | JobStartPoint | void;
}

export interface TrainJobResult {
  summary: TrainSummary;
  /** The trained model (the caller's, or `base` wrapped with the method). */
  model: TrainableModel;
  trainableParams: number;
  /** AdaLoRA: the weighted orthogonal regulariser at the last step (the train loss is the task loss alone). */
  lastRegLoss?: number;
}

/** The model to train and its step hook (`undefined`: the Trainer's default). */
function modelOf(m: JobModel): { model: TrainableModel; stepHook?: StepHook | null } {
  if ('model' in m) return m;
  const built = buildAdapter(m.base, m.method);
  return { model: built.model as unknown as TrainableModel, stepHook: built.hook ?? null };
}

/**
 * Trains `job.model` on `job.train` for `job.trainer.maxSteps` optimizer steps (fewer when stopped
 * through `job.signal` or a `betweenSteps` that resolves false) and returns the summary with the
 * trained model. The Trainer's optimizer state is freed; the model's weights stay with the caller.
 * @example
 * const { summary, model } = await trainJob({
 *   model: { base, method: { method: 'lora', taskType: 'CAUSAL_LM', r: 8, totalStep: 100 } },
 *   task: 'causal_lm', train, padTokenId: 0, seed: 0,
 *   trainer: { lr: 1e-3, maxSteps: 100, batchSize: 8 },
 * }, { onStep: (l) => console.log(l.step, l.loss) });
 */
export async function trainJob(job: TrainJob, events: TrainJobEvents = {}): Promise<TrainJobResult> {
  const { model, stepHook } = modelOf(job.model);
  if (job.memory?.gradientCheckpointing) setGradientCheckpointing(model as unknown as Module);
  if (job.memory?.chunkedLoss) setChunkedLoss(model as unknown as Module);
  const trainableParams = model.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
  const { beforeTraining, onStep, ...callbacks } = events;
  const save = job.output?.saveAdapter;
  let lastRegLoss: number | undefined;
  const trainer = new Trainer(
    model,
    {
      ...job.trainer,
      task: job.task,
      train: job.train,
      eval: job.eval,
      padTokenId: job.padTokenId,
      seed: job.seed,
      ...(stepHook !== undefined ? { stepHook } : {}),
      ...(job.output
        ? { outputDir: job.output.dir, ...(save ? { saveAdapter: (d: string) => save(d, model) } : {}) }
        : {}),
    },
    {
      ...callbacks,
      onStep: (l) => {
        lastRegLoss = l.regLoss;
        onStep?.(l);
      },
    },
  );
  const onAbort = () => trainer.requestStop();
  job.signal?.addEventListener('abort', onAbort);
  try {
    const ready = await beforeTraining?.({ model, trainableParams });
    if (job.signal?.aborted) trainer.requestStop();
    const summary = await trainer.train({ resume: (ready && ready.resumeFrom) ?? false });
    return { summary, model, trainableParams, lastRegLoss };
  } finally {
    job.signal?.removeEventListener('abort', onAbort);
    trainer.dispose();
  }
}
