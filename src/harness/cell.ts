/**
 * Runs one grid cell through the run floor's training job (`run/job.ts`: the project's `Trainer`)
 * and returns the JSON record the harness writes: config, exact trainable-parameter counts, dev (and
 * test) metrics after the last step, wall time, a sparse loss curve and, for AdaLoRA / Prune-LoRA,
 * the final rank per adapted module.
 */
import os from 'node:os';
import { tf } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import { manualSeed } from '../nn/init.js';
import { loadModel } from '../models/load.js';
import { trainJob } from '../run/job.js';
import { evaluate, type EvalResult } from '../training/evaluate.js';
import { primaryMetric, type MetricTask } from '../training/metrics.js';
import type { TrainableModel } from '../training/types.js';
import { buildMethod, countTrainable } from './methods.js';
import type { TaskData } from './tasks.js';
import type { Cell, Suite } from './suite.js';

export interface EvalRecord {
  loss: number;
  perplexity?: number;
  metrics: Record<string, number>;
  count: number;
}

export interface CellResult {
  id: string;
  suite: string;
  task: string;
  taskType: string;
  method: string;
  budget: string;
  budgetParams: number | null;
  seed: number;
  lr: number;
  config: Record<string, unknown>;
  params: {
    /** Adapter parameters trainable at the start (AdaLoRA / Prune-LoRA: initial rank). */
    adapterInitial: number;
    /** Adapter parameters the method is matched on (final budget for AdaLoRA / Prune-LoRA). */
    adapterMatched: number;
    /** Same, counted from the final rank pattern (AdaLoRA / Prune-LoRA), else = adapterMatched. */
    adapterFinal: number;
    relErrorToBudget: number | null;
    head: number;
    base: number;
  };
  dev: EvalRecord;
  test?: EvalRecord;
  primary: { name: string; value: number; higherIsBetter: boolean };
  /** Final kept rank per adapted module (AdaLoRA family and Prune-LoRA). */
  ranks?: Record<string, number>;
  lossCurve: [number, number][];
  wallSeconds: number;
  trainSeconds: number;
  env: { backend: string; loadAvg1: number; node: string; date: string };
  /** The learning-rate search's run at the chosen rate, reused as this seed's cell (run.ts). */
  fromTune?: boolean;
}

export const metricTaskOf = (c: Cell): MetricTask =>
  c.task.metric ??
  (c.task.type === 'causal_lm' ? 'causal_lm' : c.task.type === 'regression' ? 'regression' : 'binary');

const rec = (r: EvalResult): EvalRecord => ({
  loss: r.loss,
  perplexity: r.perplexity,
  metrics: r.metrics,
  count: r.count,
});

/** Per-module in+out(+1) sizes are needed to turn a rank pattern into a parameter count. */
function countFromRanks(
  model: { namedParameters(): [string, { shape: number[] }][] },
  ranks: Record<string, number>,
  svd: boolean,
): number {
  let n = 0;
  const shapes = new Map<string, { a?: number; b?: number }>();
  for (const [name, p] of model.namedParameters()) {
    const m = /^(.*)\.lora_(A|B)\.default(\.weight)?$/.exec(name);
    if (!m) continue;
    const key = m[1]!.replace(/^base_model\.model\./, '');
    const e = shapes.get(key) ?? {};
    if (m[2] === 'A') e.a = p.shape[1];
    else e.b = p.shape[0];
    shapes.set(key, e);
  }
  for (const [mod, r] of Object.entries(ranks)) {
    const key = mod.replace(/^base_model\.model\./, '');
    const s = shapes.get(key);
    if (!s || s.a === undefined || s.b === undefined) throw new Error(`internal: no A/B shapes for ${mod}`);
    n += r * (s.a + s.b + (svd ? 1 : 0));
  }
  return n;
}

/**
 * Trains and evaluates one cell.
 * @example const r = await runCell(suite, cell, data, tok.padTokenId, 5e-3, 'native');
 */
export async function runCell(
  suite: Suite,
  cell: Cell,
  data: TaskData,
  padTokenId: number,
  lr: number,
  backend: string,
  log: (s: string) => void,
): Promise<CellResult> {
  const t0 = Date.now();
  const T = suite.training;
  const taskType = cell.task.type === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS';
  manualSeed(cell.seed);
  const base = await loadModel(suite.model, {
    task: taskType,
    ...(taskType === 'SEQ_CLS' ? { numLabels: data.numLabels, padTokenId } : {}),
    seed: cell.seed,
  });
  const baseParams = base.parameters().reduce((s, p) => s + p.size, 0);
  const budgetParams = cell.budget === 'ref' ? null : suite.budgets[cell.budget]!;
  const built = buildMethod(
    base,
    cell.method,
    budgetParams ?? undefined,
    taskType,
    T,
    suite.tolerance ?? 0.1,
  );
  const counts = countTrainable(built.model);
  if (cell.method !== 'full' && counts.adapter !== built.initialCount)
    throw new Error(
      `internal: ${cell.id}: built ${counts.adapter} adapter parameters, predicted ${built.initialCount}`,
    );
  const metricTask = metricTaskOf(cell);
  const curve: [number, number][] = [];
  let lastRanks: Record<string, number> | undefined;
  const every = Math.max(1, Math.round(T.maxSteps / 50));
  const evalBatchSize = T.evalBatchSize ?? 64;
  const model = built.model as unknown as TrainableModel;
  try {
    const tTrain = Date.now();
    const { summary } = await trainJob(
      {
        model: { model, stepHook: built.hook },
        task: cell.task.type,
        train: data.train,
        eval: data.dev,
        padTokenId,
        seed: cell.seed,
        trainer: {
          metricTask,
          lr,
          weightDecay: T.weightDecay ?? 0,
          schedule: 'linear',
          warmupSteps: Math.round((T.warmupFraction ?? 0.06) * T.maxSteps),
          maxSteps: T.maxSteps,
          batchSize: cell.task.batchSize ?? T.batchSize,
          evalBatchSize,
          maxGradNorm: T.maxGradNorm ?? 1,
          evalEvery: 0,
        },
      },
      {
        onStep: (l) => {
          if (l.ranks) lastRanks = l.ranks;
          if (l.step % every === 0 || l.step === 1) curve.push([l.step, Number(l.loss.toFixed(5))]);
          if (l.step % Math.max(1, Math.round(T.maxSteps / 5)) === 0)
            log(
              `  ${cell.id} step ${l.step}/${T.maxSteps} loss ${l.loss.toFixed(4)} (${(l.elapsedMs / 1000).toFixed(0)} s)`,
            );
        },
      },
    );
    const trainSeconds = (Date.now() - tTrain) / 1000;
    // the Trainer evaluates the dev set after the last step; it has no eval only when dev is empty
    const last = summary.lastEval;
    if (!last)
      throw new ConfigError(
        `${suite.name}: task ${cell.task.name}`,
        'has no dev examples to score the cell on',
        data.dev.length,
        'give the task a dev set (or raise its evalLimit)',
      );
    const dev = {
      loss: last.loss,
      perplexity: last.perplexity,
      metrics: last.metrics,
      count: data.dev.length,
    };
    const test = data.test
      ? rec(await evaluate(model, data.test, cell.task.type, metricTask, evalBatchSize, padTokenId))
      : undefined;
    const primary = primaryMetric(metricTask);
    const value = primary.name === 'loss' ? dev.loss : dev.metrics[primary.name]!;
    const adaptive = cell.method.startsWith('adalora') || cell.method === 'prune-lora';
    const adapterFinal =
      adaptive && lastRanks
        ? countFromRanks(built.model as never, lastRanks, cell.method !== 'prune-lora')
        : counts.adapter;
    return {
      id: cell.id,
      suite: suite.name,
      task: cell.task.name,
      taskType: cell.task.type,
      method: cell.method,
      budget: cell.budget,
      budgetParams,
      seed: cell.seed,
      lr,
      config: {
        r: built.r ?? null,
        initR: built.initR ?? null,
        targets: built.targets ?? 'all parameters',
        loraAlpha:
          built.initR !== undefined ? 2 * (cell.method === 'svd-lora' ? built.r! : built.initR) : null,
        schedule: built.schedule ?? null,
        training: T,
        maxLength: cell.task.maxLength,
        batchSize: cell.task.batchSize ?? T.batchSize,
        trainExamples: data.train.length,
        devExamples: data.dev.length,
        testExamples: data.test?.length ?? null,
        fullSizes: data.fullSizes,
        metricTask,
      },
      params: {
        adapterInitial: cell.method === 'full' ? counts.total : counts.adapter,
        adapterMatched: built.matchedCount,
        adapterFinal: cell.method === 'full' ? counts.total : adapterFinal,
        relErrorToBudget: built.relError ?? null,
        head: cell.method === 'full' ? 0 : counts.head,
        base: baseParams,
      },
      dev,
      ...(test ? { test } : {}),
      primary: { name: primary.name, value, higherIsBetter: primary.higherIsBetter },
      ...(adaptive && lastRanks ? { ranks: lastRanks } : {}),
      lossCurve: curve,
      wallSeconds: (Date.now() - t0) / 1000,
      trainSeconds,
      env: {
        backend,
        loadAvg1: Number(os.loadavg()[0]!.toFixed(2)),
        node: process.version,
        date: new Date().toISOString(),
      },
    };
  } finally {
    built.hook?.dispose?.();
    // AdaLoRA's allocator statistics belong to the tuner, not to the parameter list
    (
      built.model as { base_model?: { allocation?: { dispose(): void } | null } }
    ).base_model?.allocation?.dispose();
    tf.dispose(built.model.parameters());
    tf.dispose(model.trainableParameters().map(([, v]) => v));
    tf.dispose(base.parameters());
  }
}
