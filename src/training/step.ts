/**
 * One optimizer step of the Trainer: `gradientAccumulationSteps` micro-batches of forward → loss →
 * `tf.variableGrads` over the trainable variables (summed), global-norm clipping, AdamW, then the step
 * hook (AdaLoRA's `updateAndAllocate`, PEFT adalora/model.py: right after the optimizer step, before the
 * gradients are dropped, 0-based step). A step whose loss is not finite updates nothing.
 *
 * The run around it (schedule, logging, evaluation, checkpoints, pause/stop) is `trainer.ts`.
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import { readScalar } from '../tensor/read.js';
import { collate, type DataLoader } from './data/loader.js';
import { type AdamW, clipGradNorm, globalGradNorm, GradAccumulator } from './optim.js';
import type { Allocation, StepHook, TrainableModel, TrainerOptions } from './types.js';

/** What one step needs: the model, its trainable variables, the optimizer, the data and the hook. */
export interface StepContext {
  model: TrainableModel;
  params: [string, Variable][];
  /** tfjs variable name → parameter name. */
  byVarName: Map<string, string>;
  optimizer: AdamW;
  loader: DataLoader;
  opts: Pick<TrainerOptions, 'task' | 'padTokenId' | 'gradientAccumulationSteps' | 'maxGradNorm'>;
  stepHook: StepHook | undefined;
}

/** A step whose summed loss was not finite: nothing was updated. */
export interface SkippedStep {
  finite: false;
  lossSum: number;
}

/** A completed optimizer step. */
export interface TakenStep {
  finite: true;
  /** Mean micro-batch loss (the regulariser included, as minimised). */
  loss: number;
  /** The hook's regulariser on the weights the loss was computed with (AdaLoRA). */
  regLoss?: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** What the hook reported (AdaLoRA's budget and ranks). */
  alloc?: Allocation;
}

/** The loss of one micro-batch, from the model's own loss head. */
function batchLoss(ctx: StepContext): { value: tf.Scalar; grads: Record<string, Tensor> } {
  const batch = collate(ctx.loader.next(), ctx.opts.task, ctx.opts.padTokenId);
  try {
    return tf.variableGrads(
      () => {
        const out = ctx.model.forward(batch);
        if (!out.loss)
          throw new ConfigError(
            'Trainer',
            'model.forward returned no loss',
            undefined,
            'the model must compute its loss from labels',
          );
        return out.loss as tf.Scalar;
      },
      ctx.params.map(([, v]) => v),
    );
  } finally {
    tf.dispose(Object.values(batch));
  }
}

/**
 * Runs optimizer step `step` (0-based) at learning rate `lr`. Reads only asynchronously (safe on GPU
 * backends); every gradient is disposed before it returns.
 *
 * @example const r = await optimizerStep(ctx, 0, 1e-3); if (r.finite) console.log(r.loss, r.gradNorm);
 */
export async function optimizerStep(
  ctx: StepContext,
  step: number,
  lr: number,
): Promise<SkippedStep | TakenStep> {
  const accSteps = ctx.opts.gradientAccumulationSteps ?? 1;
  const acc = new GradAccumulator(accSteps);
  let lossSum = 0;
  let finite = true;
  for (let micro = 0; micro < accSteps; micro++) {
    const { value, grads } = batchLoss(ctx);
    const loss = await readScalar(value).finally(() => value.dispose());
    if (!Number.isFinite(loss)) finite = false;
    lossSum += loss;
    if (finite) acc.add(grads);
    tf.dispose(Object.values(grads));
  }
  if (!finite) {
    acc.dispose();
    return { finite: false, lossSum };
  }
  const summed = acc.take();
  const maxNorm = ctx.opts.maxGradNorm ?? 0;
  let gradNorm: number;
  let grads: Record<string, Tensor>;
  if (maxNorm > 0) {
    const clipped = await clipGradNorm(summed, maxNorm);
    tf.dispose(Object.values(summed));
    grads = clipped.grads;
    gradNorm = clipped.norm;
  } else {
    grads = summed;
    gradNorm = await globalGradNorm(grads);
  }
  try {
    // the regulariser on the weights the loss was computed with (before this step's update)
    const regLoss = await ctx.stepHook?.regularizer?.();
    const named = new Map<string, Tensor>();
    for (const [vn, g] of Object.entries(grads)) named.set(ctx.byVarName.get(vn) ?? vn, g);
    ctx.optimizer.step(named, lr);
    // the hook gets each gradient under both the parameter name and the tfjs variable name, so it can
    // look parameters up by whichever naming its own module tree uses
    const hookGrads = new Map(named);
    for (const [vn, g] of Object.entries(grads)) hookGrads.set(vn, g);
    const alloc = await ctx.stepHook?.afterOptimizerStep(step, hookGrads);
    return {
      finite: true,
      loss: lossSum / accSteps,
      gradNorm,
      ...(regLoss !== undefined ? { regLoss } : {}),
      ...(alloc ? { alloc } : {}),
    };
  } finally {
    tf.dispose(Object.values(grads));
  }
}
