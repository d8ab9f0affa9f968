/**
 * The model-level AdaLoRA step: `updateAndAllocate(globalStep, grads)` with PEFT's three phases around
 * `Tf = totalStep − tfinal` (PEFT adalora/model.py 328-368 `update_and_allocate`), over the wrapped model's
 * parameters. `AdaLoraModel` owns one of these for its trainable adapter.
 *
 * Call it once per optimizer step, **after** the optimizer step and with the gradients of that step's
 * backward, with a 0-based step counter (PEFT adalora/model.py `update_and_allocate`; the paper's §3.3
 * importance uses the updated p):
 *   - `step < Tf`: importance EMAs updated, pruning on the cubic schedule (stores `rankPattern`);
 *   - `step == Tf`: forced masking to the target budget, pattern frozen, statistics reset;
 *   - `step > Tf`: the frozen pattern is re-applied (optimizer momentum may revive pruned E entries).
 *
 * Better than PEFT: reaching the final phase with no pattern is a `ConfigError` that says why
 * (PEFT: AttributeError, #1327); gradients may be keyed by parameter name or by tfjs variable name
 * (`tf.variableGrads(...).grads` can be passed as is); frozen parameters are skipped (#1721).
 */
import type { Tensor, Variable } from '../../tensor/tf.js';
import { ConfigError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import type { AdaLoraConfig } from './config.js';
import { RankAllocator, type RankPattern } from './rank_allocator.js';

/** Gradients of the last backward, by parameter name (`…q_proj.lora_A.default`) or tfjs variable name. */
export type GradMap = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

/** What one `updateAndAllocate` call did (for logging and the experiment scripts). */
export interface AllocationStep {
  step: number;
  phase: 'budgeting' | 'freeze' | 'final';
  /** Budget in Σ ranks at this step. */
  budget: number;
  /** True when a mask was computed or re-applied at this step. */
  masked: boolean;
  /** Kept rank per lora_E parameter after this step (null before any masking). */
  ranks: Record<string, number> | null;
}

export class AdaLoraAllocation {
  readonly allocator: RankAllocator;
  /** Number of `updateAndAllocate` calls (the save-time warning of PEFT #1327 reads it). */
  calls = 0;

  /**
   * @param root the wrapped model (names as `root.namedParameters()`, no `base_model.model.` prefix)
   * @example const alloc = new AdaLoraAllocation(loraModel.model, config, 'default');
   */
  constructor(
    readonly root: Module,
    readonly config: AdaLoraConfig,
    readonly adapter: string,
  ) {
    this.allocator = new RankAllocator(this.params(), config, adapter, {
      importance: config.importanceMetric,
    });
  }

  /** The adapter's parameters by name (fresh each call: resizing replaces variables). */
  params(): Map<string, Variable> {
    return new Map(
      this.root.namedParameters().filter(([n]) => n.includes('lora_') && n.includes(this.adapter)),
    );
  }

  /**
   * One AdaLoRA step (PEFT `AdaLoraModel.update_and_allocate`). `grads` is needed only while `step <
   * totalStep − tfinal`. Reads the triplet scores synchronously when it masks, so CPU-memory backends only
   * (cpu, native, wasm); on WebGPU/WebGL use {@link updateAndAllocateAsync}.
   * @example
   * const { grads } = tf.variableGrads(lossFn);  // after optimizer.applyGradients(grads)
   * peft.updateAndAllocate(step, grads);
   */
  updateAndAllocate(step: number, grads?: GradMap): AllocationStep {
    const plan = this.plan(step, grads);
    if (plan.phase === 'final') return this.final(step, plan.params);
    const r = this.allocator.updateAndAllocate(plan.params, plan.grads, step, plan.phase === 'freeze');
    return this.record(step, plan.phase, r);
  }

  /**
   * {@link updateAndAllocate} reading the scores asynchronously: the same result on any backend,
   * and the one a GPU backend needs.
   * @example const info = await alloc.updateAndAllocateAsync(step, grads);
   */
  async updateAndAllocateAsync(step: number, grads?: GradMap): Promise<AllocationStep> {
    const plan = this.plan(step, grads);
    if (plan.phase === 'final') return this.final(step, plan.params);
    const r = await this.allocator.updateAndAllocateAsync(
      plan.params,
      plan.grads,
      step,
      plan.phase === 'freeze',
    );
    return this.record(step, plan.phase, r);
  }

  /** Validates the step, counts the call and picks the phase (the gradients by parameter name in budgeting). */
  private plan(
    step: number,
    grads: GradMap | undefined,
  ): { phase: AllocationStep['phase']; params: Map<string, Variable>; grads: Map<string, Tensor> } {
    if (!Number.isInteger(step) || step < 0) {
      throw new ConfigError(
        'updateAndAllocate.step',
        'must be the 0-based optimizer step (an integer ≥ 0)',
        step,
        'pass the number of optimizer steps taken before this one',
      );
    }
    this.calls++;
    const tFreeze = this.config.totalStep - this.config.tfinal;
    const params = this.params();
    if (step < tFreeze) return { phase: 'budgeting', params, grads: resolveGrads(params, grads, step) };
    return { phase: step === tFreeze ? 'freeze' : 'final', params, grads: new Map() };
  }

  /** Stores the pattern of a budgeting/freeze step (the freeze step also resets the statistics). */
  private record(
    step: number,
    phase: AllocationStep['phase'],
    { budget, rankPattern }: { budget: number; rankPattern: RankPattern | null },
  ): AllocationStep {
    const cfg = this.config;
    if (phase === 'freeze') {
      cfg.rankPattern = rankPattern;
      this.allocator.resetIpt();
      return { step, phase, budget, masked: true, ranks: ranksOf(cfg.pattern) };
    }
    if (rankPattern) cfg.rankPattern = rankPattern;
    return { step, phase, budget, masked: rankPattern !== null, ranks: ranksOf(cfg.pattern) };
  }

  /** The final phase: re-applies the frozen pattern (no tensor is read). */
  private final(step: number, params: Map<string, Variable>): AllocationStep {
    const cfg = this.config;
    if (cfg.pattern === null) {
      const tFreeze = cfg.totalStep - cfg.tfinal;
      throw new ConfigError(
        'AdaLoraModel.updateAndAllocate',
        `reached the final phase (step ${step} > totalStep − tfinal = ${tFreeze}) but no masking step ever ran, so there is no rank pattern to freeze`,
        step,
        `call updateAndAllocate on every optimizer step from step 0 (it masks on the schedule, and forces a mask at step ${tFreeze}); check that the step counter is the optimizer step`,
      );
    }
    this.allocator.maskUsingRankPattern(params, cfg.pattern);
    return {
      step,
      phase: 'final',
      budget: this.allocator.targetBgt,
      masked: true,
      ranks: ranksOf(cfg.pattern),
    };
  }

  /** Frees the allocator's statistics. */
  dispose(): void {
    this.allocator.dispose();
  }
}

function ranksOf(p: RankPattern | null): Record<string, number> | null {
  if (p === null) return null;
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.filter(Boolean).length]));
}

/** Gradients by parameter name, looking each parameter up by its name or its tfjs variable name. */
function resolveGrads(
  params: Map<string, Variable>,
  grads: GradMap | undefined,
  step: number,
): Map<string, Tensor> {
  if (!grads) {
    throw new ConfigError(
      'AdaLoraModel.updateAndAllocate',
      'needs the gradients of this step during the budgeting phase',
      step,
      'pass the grads of the last backward (e.g. tf.variableGrads(...).grads)',
    );
  }
  const get =
    grads instanceof Map ? (k: string) => grads.get(k) : (k: string) => (grads as Record<string, Tensor>)[k];
  const out = new Map<string, Tensor>();
  for (const [n, v] of params) {
    const g = get(n) ?? get(`base_model.model.${n}`) ?? get(v.name); // wrapped-model, PeftModel or tfjs names
    if (g) out.set(n, g);
  }
  return out;
}
