/**
 * The training loop, the library's only one: the CLI, the demo, the harness, the experiment scripts
 * and the web page all train through it. Each optimizer step (`step.ts`: forward → loss →
 * `tf.variableGrads` → clipping → AdamW → the AdaLoRA hook) is followed by logging, the awaited
 * `betweenSteps` callback (a page's pause/stop), evaluation and checkpoints.
 *
 * Resume is exact: weights, optimizer slots, schedule position, the dropout RNG, the data order and
 * the hook's state all come back from the checkpoint, so an interrupted run ends with the same bytes
 * as an uninterrupted one.
 */
import type { Variable } from '../tensor/tf.js';
import { CheckpointError, ConfigError, LowrankError } from '../errors.js';
import { joinPath, makeDir, saveSafetensors } from '../io/index.js';
import { defaultRng } from '../nn/init.js';
import { DataLoader } from './data/loader.js';
import { AdamW, scheduleFactor } from './optim.js';
import { optimizerStep, type StepContext } from './step.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { primaryMetric, type MetricTask } from './metrics.js';
import {
  checkpointDir,
  disposeCheckpoint,
  latestCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  type TrainerState,
} from './checkpoint.js';
import { contentHash } from './data/hash.js';
import { adaloraHook } from './adalora_hook.js';
import type {
  EvalLog,
  SkipLog,
  StepHook,
  TrainableModel,
  TrainerCallbacks,
  TrainerOptions,
  TrainLog,
  TrainSummary,
} from './types.js';

/** Raised when training cannot continue (e.g. too many non-finite losses in a row). */
export class TrainingError extends LowrankError {}

const DEFAULT_MAX_NON_FINITE = 5;

/** One turn of the event loop: `setImmediate` in Node, a zero timeout where it is absent (browsers). */
function yieldToEventLoop(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  return new Promise<void>((r) => (immediate ? immediate(r) : setTimeout(r, 0)));
}

/**
 * Trains a model (adapter or full fine-tuning) on encoded examples.
 *
 * @example
 * const trainer = new Trainer(peft, { task: 'classification', train, eval: dev, padTokenId: 0,
 *   lr: 1e-3, maxSteps: 200, batchSize: 16, seed: 42, outputDir: 'runs/sst2' }, { onStep: (l) => console.log(l.loss) });
 * const summary = await trainer.train({ resume: true });
 * trainer.dispose();
 */
export class Trainer {
  readonly optimizer: AdamW;
  readonly loader: DataLoader;
  readonly metricTask: MetricTask;
  private readonly params: [string, Variable][];
  private readonly byVarName = new Map<string, string>();
  private step = 0;
  private nonFiniteInARow = 0;
  private lastLoss = NaN;
  private best?: { step: number; metric: string; value: number };
  private lastEval?: EvalLog;
  private stopRequested = false;
  private readonly stepHook: StepHook | undefined;
  private readonly stepContext: StepContext;

  constructor(
    readonly model: TrainableModel,
    readonly opts: TrainerOptions,
    readonly callbacks: TrainerCallbacks = {},
  ) {
    if (!(Number.isInteger(opts.maxSteps) && opts.maxSteps >= 1))
      throw new ConfigError('maxSteps', 'must be an integer >= 1', opts.maxSteps);
    // AdaLoRA needs updateAndAllocate after every optimizer step: installed unless the caller gives a hook.
    this.stepHook = opts.stepHook === null ? undefined : (opts.stepHook ?? adaloraHook(model));
    this.params = model.trainableParameters();
    if (this.params.length === 0)
      throw new ConfigError(
        'Trainer',
        'the model has no trainable parameters',
        0,
        'wrap it with getPeftModel or unfreeze parameters',
      );
    for (const [n, v] of this.params) this.byVarName.set(v.name, n);
    this.optimizer = new AdamW(this.params, {
      lr: opts.lr,
      betas: opts.betas,
      eps: opts.eps,
      weightDecay: opts.weightDecay ?? 0,
    });
    this.loader = new DataLoader(opts.train, opts.batchSize, opts.seed, opts.shuffle ?? true);
    this.metricTask =
      opts.metricTask ??
      (opts.task === 'regression'
        ? 'regression'
        : opts.task === 'causal_lm'
          ? 'causal_lm'
          : 'classification');
    const { model: m, params, byVarName, optimizer, loader, stepHook } = this;
    this.stepContext = { model: m, params, byVarName, optimizer, loader, opts, stepHook };
  }

  /** Completed optimizer steps. */
  get globalStep(): number {
    return this.step;
  }

  /** Asks the loop to stop after the current step (a checkpoint is written if there is an output folder). */
  requestStop(): void {
    this.stopRequested = true;
  }

  private fingerprint(): string {
    const o = this.opts;
    return contentHash(
      JSON.stringify([
        o.task,
        o.lr,
        o.weightDecay ?? 0,
        o.betas ?? null,
        o.eps ?? null,
        o.schedule ?? 'linear',
        o.warmupSteps ?? 0,
        o.maxSteps,
        o.batchSize,
        o.gradientAccumulationSteps ?? 1,
        o.maxGradNorm ?? 0,
        o.seed,
        o.train.length,
        ...(o.shuffle === false ? ['in order'] : []), // absent by default: older checkpoints still match
      ]),
      this.params.map(([n, v]) => `${n}:${v.shape.join('x')}`).join(','),
    );
  }

  /** Learning rate at 0-based optimizer step `step`. */
  lrAt(step: number): number {
    return (
      this.opts.lr *
      scheduleFactor(
        {
          name: this.opts.schedule ?? 'linear',
          warmupSteps: this.opts.warmupSteps ?? 0,
          totalSteps: this.opts.maxSteps,
        },
        step,
      )
    );
  }

  /** Evaluates on the eval set (or `examples`). */
  evaluate(examples = this.opts.eval): Promise<EvalResult> {
    if (!examples || examples.length === 0)
      throw new ConfigError(
        'Trainer.evaluate',
        'no evaluation examples',
        0,
        'pass eval examples or an --eval file',
      );
    return evaluate(
      this.model,
      examples,
      this.opts.task,
      this.metricTask,
      this.opts.evalBatchSize ?? this.opts.batchSize,
      this.opts.padTokenId,
    );
  }

  /** Runs (or resumes) training to `maxSteps`. `resume: true` picks the newest checkpoint in the output folder. */
  async train(run: { resume?: boolean | string } = {}): Promise<TrainSummary> {
    let resumedFrom: number | undefined;
    if (run.resume) {
      const dir =
        typeof run.resume === 'string'
          ? run.resume
          : this.opts.outputDir
            ? await latestCheckpoint(this.opts.outputDir)
            : undefined;
      if (typeof run.resume === 'string' && !dir)
        throw new CheckpointError(run.resume, 'no checkpoint found');
      if (dir) {
        await this.restore(dir);
        resumedFrom = this.step;
      }
    }
    this.model.train(true);
    const evalEvery = this.opts.evalEvery ?? 0;
    const saveEvery = this.opts.saveEvery ?? 0;
    const t0 = Date.now();
    let heldMs = 0; // time spent in betweenSteps (a paused page), not counted as training time
    while (this.step < this.opts.maxSteps && !this.stopRequested) {
      const step = this.step;
      const lr = this.lrAt(step);
      const r = await optimizerStep(this.stepContext, step, lr);
      if (!r.finite) {
        this.nonFiniteInARow += 1;
        const skip: SkipLog = {
          type: 'skip',
          step,
          reason: `non-finite loss (${r.lossSum})`,
          inARow: this.nonFiniteInARow,
        };
        this.callbacks.onSkip?.(skip);
        this.callbacks.onLog?.(skip);
        this.step += 1; // the schedule advances, as HF's scheduler does on a skipped (overflowed) step
        const limit = this.opts.maxNonFinite ?? DEFAULT_MAX_NON_FINITE;
        if (this.nonFiniteInARow >= limit) {
          throw new TrainingError(
            `step ${step}`,
            `the loss was non-finite ${this.nonFiniteInARow} steps in a row; training stopped`,
            r.lossSum,
            'lower the learning rate, enable --max-grad-norm, or check the data for empty/garbled rows',
          );
        }
        continue;
      }
      this.nonFiniteInARow = 0;
      if (r.alloc) this.callbacks.onAllocation?.(step, r.alloc);
      this.step += 1;
      this.lastLoss = r.loss - (r.regLoss ?? 0);
      const log: TrainLog = {
        type: 'train',
        step: this.step,
        epoch: this.loader.epoch,
        loss: this.lastLoss,
        ...(r.regLoss !== undefined ? { regLoss: r.regLoss } : {}),
        lr,
        gradNorm: r.gradNorm,
        elapsedMs: Date.now() - t0 - heldMs,
      };
      if (r.alloc) {
        log.budget = r.alloc.budget;
        if (r.alloc.ranks) log.ranks = r.alloc.ranks;
      }
      this.callbacks.onStep?.(log);
      this.callbacks.onLog?.(log);
      if (this.callbacks.betweenSteps) {
        const held = Date.now();
        if ((await this.callbacks.betweenSteps(this.step)) === false) this.stopRequested = true;
        heldMs += Date.now() - held;
      }
      const last = this.step === this.opts.maxSteps;
      if (
        this.opts.eval &&
        this.opts.eval.length > 0 &&
        ((evalEvery > 0 && this.step % evalEvery === 0) || last)
      )
        await this.runEval();
      if (
        this.opts.outputDir &&
        ((saveEvery > 0 && this.step % saveEvery === 0) || last || this.stopRequested)
      )
        await this.checkpoint();
      await yieldToEventLoop(); // let signals, progress output and the web page in
    }
    const summary: TrainSummary = {
      steps: this.step,
      finalLoss: this.lastLoss,
      best: this.best,
      lastEval: this.lastEval,
      resumedFrom,
    };
    if (this.opts.outputDir && this.step >= this.opts.maxSteps) {
      summary.adapterDir = joinPath(this.opts.outputDir, 'adapter');
      await this.saveAdapter(summary.adapterDir);
      if (this.best) summary.bestDir = joinPath(this.opts.outputDir, 'best');
    }
    this.callbacks.onEnd?.(summary);
    return summary;
  }

  private async runEval(): Promise<void> {
    const r = await this.evaluate();
    const primary = primaryMetric(this.metricTask);
    const value = primary.name === 'loss' ? r.loss : r.metrics[primary.name]!;
    const improved =
      !this.best || (primary.higherIsBetter ? value > this.best.value : value < this.best.value);
    if (improved) this.best = { step: this.step, metric: primary.name, value };
    const log: EvalLog = { type: 'eval', step: this.step, loss: r.loss, metrics: r.metrics, best: improved };
    if (r.perplexity !== undefined) log.perplexity = r.perplexity;
    this.lastEval = log;
    if (improved && this.opts.outputDir) await this.saveAdapter(joinPath(this.opts.outputDir, 'best'));
    this.callbacks.onEval?.(log);
    this.callbacks.onLog?.(log);
  }

  /** Writes the adapter (PEFT files via `opts.saveAdapter`, else trainable weights as safetensors). */
  async saveAdapter(dir: string): Promise<void> {
    await makeDir(dir);
    if (this.opts.saveAdapter) return this.opts.saveAdapter(dir);
    await saveSafetensors(joinPath(dir, 'model.safetensors'), new Map(this.params));
  }

  /** Writes a resumable checkpoint for the current step and returns its folder. */
  async checkpoint(): Promise<string> {
    if (!this.opts.outputDir) throw new ConfigError('Trainer.checkpoint', 'needs an outputDir', undefined);
    const dir = checkpointDir(this.opts.outputDir, this.step);
    const state: TrainerState = {
      version: 1,
      step: this.step,
      optimizerStep: this.optimizer.stepCount,
      loader: this.loader.state(),
      initRng: defaultRng().state(),
      nonFiniteInARow: this.nonFiniteInARow,
      lastLoss: this.lastLoss,
      best: this.best,
      hook: this.stepHook?.stateJson(),
      fingerprint: this.fingerprint(),
    };
    await saveCheckpoint(dir, {
      trainable: new Map(this.params),
      optimizer: this.optimizer.stateTensors(),
      hook: this.stepHook?.stateTensors() ?? new Map(),
      state,
    });
    this.callbacks.onCheckpoint?.(dir, this.step);
    return dir;
  }

  private async restore(dir: string): Promise<void> {
    const c = await loadCheckpoint(dir);
    try {
      if (c.state.fingerprint !== this.fingerprint()) {
        throw new CheckpointError(
          dir,
          'was written with different training options or trainable parameters',
          undefined,
          'resume with the same config (see the run folder config.json)',
        );
      }
      for (const [name, v] of this.params) {
        const t = c.trainable.get(name);
        if (!t) throw new CheckpointError(dir, 'missing trainable parameter', name);
        v.assign(t);
      }
      this.optimizer.loadState(c.optimizer, c.state.optimizerStep);
      this.stepHook?.loadState(c.hook, c.state.hook);
      this.loader.setState(c.state.loader);
      defaultRng().setState(c.state.initRng);
      this.step = c.state.step;
      this.nonFiniteInARow = c.state.nonFiniteInARow;
      this.lastLoss = c.state.lastLoss;
      this.best = c.state.best;
    } finally {
      disposeCheckpoint(c);
    }
  }

  /** Frees the optimizer slots (the model stays with its owner). */
  dispose(): void {
    this.optimizer.dispose();
  }
}
