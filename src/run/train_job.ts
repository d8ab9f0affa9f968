/**
 * The training job's file wrapper: one typed job of paths → one run folder. It loads the tokenizer,
 * the data and the base, builds HyperLoRA's hypernetwork (other methods are built by the core), writes
 * the run folder, prepares a resume, trains through the in-memory core (`run/job.ts` `trainJob`:
 * the method, the memory savers, the `Trainer`) and renders the report. `lowrank train` and the demo
 * call it after parsing their flags; every error is one of the library's typed errors.
 */
import path from 'node:path';
import { tf } from '../tensor/tf.js';
import { initBackend } from '../tensor/backend.js';
import { manualSeed } from '../nn/init.js';
import type { Module } from '../nn/module.js';
import { loadModel, saveModel } from '../models/load.js';
import type { MetricTask } from '../training/metrics.js';
import type { ScheduleName } from '../training/optim.js';
import type { EvalLog, SkipLog, TrainableModel, TrainLog, TrainSummary } from '../training/types.js';
import { findResumableCheckpoint, loadCheckpoint, disposeCheckpoint } from '../training/checkpoint.js';
import { methodConfig, type MethodSpec } from './methods.js';
import { trainJob, type MemorySavers } from './job.js';
import { loadDataSets, openTokenizer, tokenizerFiles, type DataOptions } from './data.js';
import { cleanInterruptedWrites, openRunFolder, rotateCheckpoints, type RunLog } from './run_folder.js';
import type { ConditionDataSets, ConditionSet, HyperTrainOptions } from './hyperlora.js';
import type { HyperLoraModel } from '../tuners/hyperlora/model.js';

/** HyperLoRA: one hypernetwork over named text sets (replaces `data.data`); the set names name the conditions. */
export interface HyperJob extends Omit<HyperTrainOptions, 'names'> {
  conditions: ConditionSet[];
}

/** Everything a training run needs, typed (the CLI builds it from its flags). */
export interface TrainingJob {
  /** Base model: a Hugging Face folder or a llama2.c .bin. */
  model: string;
  /** Tokenizer path (default: the model folder, or the one tok*.bin beside a llama2.c file). */
  tokenizer?: string;
  /** The adapter (`taskType` and `totalStep` come from the data and `trainer.maxSteps`); 'full' trains every weight. */
  method: Omit<MethodSpec, 'taskType' | 'totalStep'> | 'full' | { hyper: HyperJob };
  /** Memory savers for large models ({@link MemorySavers}). */
  memory?: MemorySavers;
  /** A 4-bit base (QLoRA when the method is an adapter). */
  quantize?: { quantType: 'nf4' | 'fp4'; doubleQuant: boolean; embeddingDtype?: 'float32' | 'float16' };
  /** The data (`data` is unused for HyperLoRA); `cache`: keep tokenised data beside the run folder. */
  data: Omit<DataOptions, 'data' | 'cacheDir' | 'seed'> & { data?: string; cache: boolean };
  trainer: {
    lr: number;
    weightDecay: number;
    schedule: ScheduleName;
    warmupSteps: number;
    maxSteps: number;
    batchSize: number;
    evalBatchSize?: number;
    gradientAccumulationSteps: number;
    maxGradNorm: number;
    evalEvery: number;
    saveEvery: number;
    maxNonFinite: number;
    metricTask?: MetricTask;
  };
  /** Fixes init, dropout, shuffling and the held-out split. */
  seed: number;
  /** tfjs backend name or 'auto'. */
  backend: string;
  /** The run folder (new or empty, or an earlier run with `resume`). */
  output: string;
  resume: boolean;
  /** Resumable checkpoints kept in `output` (the oldest are deleted after each new one). */
  keepCheckpoints: number;
  /** Render report.html (+ rank heatmap) at the end. */
  report: boolean;
  /** What config.json records (the options as the front end took them, reusable to resume). */
  config: Record<string, unknown>;
  /** Aborting finishes the current step, writes a checkpoint and returns. */
  signal?: AbortSignal;
  /** How the front end names `output` in error messages (the CLI: `--output`). */
  outputLabel?: string;
}

export interface JobStart {
  task: string;
  backend: string;
  train: number;
  eval: number;
  trainableParams: number;
}

export interface JobEvents {
  /** The model is built and the run folder written; training starts. */
  onStart?(s: JobStart): void;
  onStep?(l: TrainLog): void;
  onEval?(l: EvalLog): void;
  onSkip?(l: SkipLog): void;
  /** A resume: checkpoints skipped as damaged, and the one resumed from (undefined: step 0). */
  onResume?(r: { skipped: { dir: string; reason: string }[]; from?: string }): void;
}

export interface TrainResult {
  summary: TrainSummary;
  output: string;
  report?: string;
  heatmap?: string;
  trainableParams: number;
  /** AdaLoRA: the weighted orthogonal regulariser at the last step (the train loss is the task loss alone). */
  lastRegLoss?: number;
  /** HyperLoRA: held-out loss of each condition's set. */
  byCondition?: { name: string; loss: number; perplexity?: number }[];
}

/** The method spec of a job for `taskType`, or the job's other kinds as they are. */
function specOf(job: TrainingJob, taskType: 'SEQ_CLS' | 'CAUSAL_LM'): MethodSpec | 'full' {
  if (job.method === 'full') return 'full';
  if ('hyper' in job.method) throw new Error('internal: specOf on a HyperLoRA job');
  return { ...job.method, taskType, totalStep: job.trainer.maxSteps };
}

/**
 * Writes the run folder of `job` (new, or the earlier run on a resume), announces the start and, on a
 * resume, picks the newest intact checkpoint, clears what an interrupted write left and cuts the log
 * back to that checkpoint's step (undefined `resumeFrom`: the run starts over at step 0).
 */
async function startRunFolder(
  job: TrainingJob,
  facts: Record<string, unknown>,
  events: JobEvents,
  start: JobStart,
): Promise<{ log: RunLog; resumeFrom?: string }> {
  const run = openRunFolder(job.output, job.config, facts, job.resume, job.outputLabel);
  events.onStart?.(start);
  if (!job.resume) return { log: run.log };
  cleanInterruptedWrites(job.output);
  const found = await findResumableCheckpoint(job.output);
  if (found.dir) {
    const c = await loadCheckpoint(found.dir);
    run.log.truncateAfter(c.state.step);
    disposeCheckpoint(c);
  } else run.log.truncateAfter(0);
  events.onResume?.({ skipped: found.skipped, from: found.dir });
  return { log: run.log, resumeFrom: found.dir };
}

/**
 * Runs `job` to its run folder and returns the summary (a stop through `job.signal` returns early
 * with `summary.steps < maxSteps`; the run resumes from its last checkpoint). The training itself is
 * the in-memory core's ({@link trainJob}); this wrapper loads from paths and writes the files.
 * @example const r = await runTrainingJob(job, { onStep: (l) => console.log(l.step, l.loss) });
 */
export async function runTrainingJob(job: TrainingJob, events: JobEvents = {}): Promise<TrainResult> {
  const { output, seed } = job;
  const hyper = typeof job.method === 'object' && 'hyper' in job.method ? job.method.hyper : undefined;
  // the adapter config's own rules (e.g. AdaLoRA's schedule) before anything is loaded
  if (!hyper && job.method !== 'full')
    methodConfig(specOf(job, job.data.task === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS') as MethodSpec);

  const backend = await initBackend(job.backend);
  const tok = await openTokenizer(job.model, job.tokenizer);
  const cacheRoot = path.join(path.dirname(path.resolve(output)), '.lowrank-cache');
  const dataOpts = { ...job.data, seed, cacheDir: job.data.cache ? cacheRoot : undefined };
  let conditionData: ConditionDataSets | undefined;
  if (hyper) {
    const { loadConditionSets } = await import('./hyperlora.js');
    conditionData = await loadConditionSets(hyper.conditions, dataOpts, tok.text);
  }
  const data = conditionData ?? (await loadDataSets({ ...dataOpts, data: job.data.data ?? '' }, tok.text));
  const runFacts = {
    task: data.task,
    labelNames: data.labelNames ?? null,
    numLabels: data.numLabels,
    backend: backend.backend,
    tokenizer: tok.path,
  };

  manualSeed(seed);
  const taskType = data.task === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS';
  const base = await loadModel(job.model, {
    task: taskType,
    // the collator pads with the tokenizer's id; a decoder classifier must look for the same id
    ...(taskType === 'SEQ_CLS' ? { numLabels: data.numLabels, padTokenId: tok.text.padTokenId } : {}),
    ...(job.quantize ? { quantize: job.quantize.quantType, doubleQuant: job.quantize.doubleQuant } : {}),
    ...(job.quantize?.embeddingDtype ? { embeddingDtype: job.quantize.embeddingDtype } : {}),
    seed,
  });
  const maxSteps = job.trainer.maxSteps;
  let hyperModel: HyperLoraModel | undefined;
  let trained: Module | undefined;
  let log: RunLog | undefined;
  try {
    if (conditionData && hyper)
      hyperModel = (await import('./hyperlora.js')).buildHyperLora(base, {
        ...hyper,
        names: conditionData.names,
      });
    const saveAdapter = async (dir: string, model: TrainableModel) => {
      const m = model as unknown as { savePretrained?: (d: string) => Promise<void> };
      if (typeof m.savePretrained === 'function') return m.savePretrained(dir);
      // full fine-tuning: the result is a complete Hugging Face folder, tokenizer included
      await saveModel(base, dir, { tokenizerFiles: tokenizerFiles(tok.path) });
    };
    const t = job.trainer;
    const { summary, lastRegLoss, trainableParams } = await trainJob(
      {
        model: hyperModel
          ? { model: hyperModel as unknown as TrainableModel }
          : { base, method: specOf(job, taskType) },
        task: data.task,
        train: data.train,
        eval: data.eval,
        padTokenId: tok.text.padTokenId,
        trainer: t,
        seed,
        memory: job.memory,
        signal: job.signal,
        output: { dir: output, saveAdapter },
      },
      {
        // only now, with every option checked and the model built, does the run folder get written
        beforeTraining: async ({ model, trainableParams }) => {
          trained = model as unknown as Module;
          const start = { task: data.task, backend: backend.backend, trainableParams };
          const run = await startRunFolder(job, runFacts, events, {
            ...start,
            train: data.train.length,
            eval: data.eval.length,
          });
          log = run.log;
          return { resumeFrom: run.resumeFrom };
        },
        onLog: (l) => log?.append(l),
        onStep: (l) => events.onStep?.(l),
        onEval: (l) => events.onEval?.(l),
        onSkip: (s) => events.onSkip?.(s),
        onCheckpoint: () => rotateCheckpoints(output, job.keepCheckpoints),
      },
    );
    const result: TrainResult = { summary, output, trainableParams, lastRegLoss };
    if (conditionData && hyperModel && summary.steps >= maxSteps) {
      const { evalByCondition } = await import('./hyperlora.js');
      result.byCondition = await evalByCondition(
        hyperModel,
        conditionData,
        t.evalBatchSize ?? t.batchSize,
        tok.text.padTokenId,
      );
    }
    if (summary.steps < maxSteps || !job.report) return result;
    const { writeReport } = await import('../report/report.js');
    const r = await writeReport(output);
    result.report = r.html;
    result.heatmap = r.heatmapPng;
    return result;
  } finally {
    // the adapter lives inside the base (injected in place); HyperLoRA's hypernetwork beside it
    tf.dispose((trained ?? hyperModel ?? base).parameters());
  }
}
