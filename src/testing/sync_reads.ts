/**
 * Training under the GPU-backend rule "no synchronous tensor reads" (src/tensor/read.ts): every
 * `dataSync`/`arraySync` through the engine throws while the library trains, evaluates and saves.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forbidSyncReads } from '../tensor/read.js';
import { trainJob } from '../run/job.js';
import type { TrainableModel, TrainerOptions } from '../training/types.js';

/**
 * Runs `fn` with synchronous tensor reads forbidden, and allows them again however it ends.
 *
 * @example await withoutSyncReads(() => quantizeModelAsync(model, { quantType: 'nf4' }));
 */
export async function withoutSyncReads<T>(fn: () => Promise<T>): Promise<T> {
  const restore = forbidSyncReads();
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** The run-specific Trainer options of {@link trainWithoutSyncReads}. */
export type GuardedRun = Pick<
  TrainerOptions,
  'task' | 'train' | 'eval' | 'maxSteps' | 'seed' | 'evalEvery' | 'saveAdapter'
>;

/**
 * Trains `model` through the library's training job (`run/job.ts`; lr 0.01, batches of 4, gradient norm ≤ 0.5, pad id 0,
 * output in a new temp folder) with synchronous reads forbidden throughout. Returns the step losses
 * and the output folder (the caller removes it).
 *
 * @example
 * const { losses, dir } = await trainWithoutSyncReads(peft, { task: 'causal_lm', train, eval, maxSteps: 4,
 *   seed: 1, evalEvery: 2, saveAdapter: (d) => peft.savePretrained(d) });
 */
export async function trainWithoutSyncReads(
  model: TrainableModel,
  run: GuardedRun,
): Promise<{ losses: number[]; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-sync-'));
  const losses: number[] = [];
  const { task, train, eval: evalSet, maxSteps, seed, evalEvery, saveAdapter } = run;
  await withoutSyncReads(() =>
    trainJob(
      {
        model: { model },
        task,
        train,
        eval: evalSet,
        padTokenId: 0,
        seed,
        trainer: { lr: 0.01, batchSize: 4, maxGradNorm: 0.5, maxSteps, evalEvery },
        output: { dir, ...(saveAdapter ? { saveAdapter: (d: string) => saveAdapter(d) } : {}) },
      },
      { onStep: (l) => losses.push(l.loss) },
    ),
  );
  return { losses, dir };
}
