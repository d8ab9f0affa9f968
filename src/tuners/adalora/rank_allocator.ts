/**
 * AdaLoRA's rank allocator (paper arXiv 2303.10512 §3.2–3.3; PEFT adalora/layer.py `RankAllocator`), a class
 * of its own that is driven by plain name → tensor maps so it can be checked without a model.
 *
 * Names are `namedParameters()` names of the wrapped model, e.g.
 * `model.layers.0.self_attn.q_proj.lora_A.default`. Exactly as PEFT, parameters are selected by
 * *substring* tests (`lora_A.<adapter>` in the name, PEFT `_set_budget_scheduler`, `update_ipt`, `mask_to_budget`), budgets are counted in total
 * triplets (Σ ranks), the cubic schedule truncates with `Math.trunc` (Python `int()`), and the pruning
 * threshold is the k-th smallest triplet score with `<=` (ties prune more than k; NaN is never pruned).
 *
 * Ablation switches (constructor option `importance`, for the paper's importance-score ablations
 * in its experiments section; issue 7):
 * - `'sensitivity-uncertainty'` (default, PEFT and the paper): s = Ī·Ū (Eq. 8–10), triplet score
 *   S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij) (Eq. 11).
 * - `'sensitivity'`: s = Ī, the smoothed sensitivity without the uncertainty factor.
 * - `'magnitude'`: S_i = |λ_i|, the magnitude of the singular value only (no gradients needed;
 *   `updateIpt` then keeps no statistics).
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { sensitivityEmaAll } from '../../tensor/ops/sensitivity.js';
import { ConfigError, ShapeError, CheckpointError } from '../../errors.js';
import { assignMask, kthSmallest, replaceAll } from './masking.js';
import { tripletScores } from './triplet_scores.js';
import { readAll, readDataSync } from '../../tensor/read.js';

export { kthSmallest } from './masking.js';

/** How a triplet's importance is scored (see the file comment). */
export type ImportanceMetric = 'sensitivity-uncertainty' | 'sensitivity' | 'magnitude';

/** The schedule fields the allocator reads (an `AdaLoraConfig` satisfies this). */
export interface RankAllocatorSchedule {
  targetR: number;
  tinit: number;
  tfinal: number;
  totalStep: number;
  deltaT: number;
  beta1: number;
  beta2: number;
}

export interface RankAllocatorOptions {
  /** Importance score used for pruning; default PEFT's `'sensitivity-uncertainty'`. */
  importance?: ImportanceMetric;
}

/** `{ E param name: kept flags }` (PEFT `rank_pattern`: a list of bools per `lora_E`, True = kept). */
export type RankPattern = Record<string, boolean[]>;

/** Parameters by `namedParameters()` name, in module order (a `Map` keeps insertion order). */
export type ParamMap = ReadonlyMap<string, Tensor>;

export interface BudgetStep {
  budget: number;
  maskInd: boolean;
}

export class RankAllocator {
  /** Σ initial ranks of the adapter's `lora_A` matrices (PEFT `RankAllocator._set_budget_scheduler`). */
  readonly initBgt: number;
  /** `targetR` × number of adapted matrices. */
  readonly targetBgt: number;
  readonly importance: ImportanceMetric;
  private readonly _ipt = new Map<string, Tensor>();
  private readonly _expAvgIpt = new Map<string, Tensor>();
  private readonly _expAvgUnc = new Map<string, Tensor>();

  /**
   * @param params named parameters of the wrapped model (only `lora_A.<adapter>` shapes are read here)
   * @param schedule `AdaLoraConfig` (or any object with its schedule fields)
   * @example
   * const alloc = new RankAllocator(new Map(model.namedParameters()), config, 'default');
   * alloc.budgetSchedule(300); // { budget: 45, maskInd: true } for the spec's golden schedule
   */
  constructor(
    params: ParamMap,
    readonly schedule: RankAllocatorSchedule,
    readonly adapterName = 'default',
    options: RankAllocatorOptions = {},
  ) {
    for (const field of ['beta1', 'beta2'] as const) {
      const b = schedule[field];
      if (!(b > 0 && b < 1)) {
        throw new ConfigError(
          `RankAllocator.${field}`,
          'must be strictly between 0 and 1',
          b,
          'use e.g. 0.85',
        );
      }
    }
    this.importance = options.importance ?? 'sensitivity-uncertainty';
    if (!['sensitivity-uncertainty', 'sensitivity', 'magnitude'].includes(this.importance)) {
      throw new ConfigError(
        'RankAllocator.importance',
        'must be one of sensitivity-uncertainty, sensitivity, magnitude',
        this.importance,
        'omit it for PEFT behaviour',
      );
    }
    // PEFT `RankAllocator._set_budget_scheduler` `_set_budget_scheduler`: substring match, budget = Σ rows of lora_A.
    let init = 0;
    const nameSet = new Set<string>();
    for (const [n, p] of params) {
      if (n.includes(`lora_A.${adapterName}`)) {
        init += p.shape[0]!;
        nameSet.add(replaceAll(n, 'lora_A', '%s'));
      }
    }
    this.initBgt = init;
    this.targetBgt = schedule.targetR * nameSet.size;
  }

  /** Current sensitivity |p·g| per parameter (read-only view for tests and logging). */
  get ipt(): ReadonlyMap<string, Tensor> {
    return this._ipt;
  }
  /** Ī, the sensitivity EMA. */
  get expAvgIpt(): ReadonlyMap<string, Tensor> {
    return this._expAvgIpt;
  }
  /** Ū, the uncertainty EMA. */
  get expAvgUnc(): ReadonlyMap<string, Tensor> {
    return this._expAvgUnc;
  }

  /**
   * Cubic budget schedule (PEFT `RankAllocator.budget_schedule`, paper Eq. 12): `budget` in Σ ranks and whether this step masks.
   * @example alloc.budgetSchedule(0); // { budget: initBgt, maskInd: false }
   */
  budgetSchedule(step: number): BudgetStep {
    const { tinit, tfinal, totalStep, deltaT } = this.schedule;
    if (step <= tinit) return { budget: this.initBgt, maskInd: false };
    if (step > totalStep - tfinal) return { budget: this.targetBgt, maskInd: true };
    const mul = 1 - (step - tinit) / (totalStep - tfinal - tinit);
    const budget = Math.trunc((this.initBgt - this.targetBgt) * Math.pow(mul, 3) + this.targetBgt);
    return { budget, maskInd: step % deltaT === 0 };
  }

  /** Parameters the EMAs track: `lora_` and the adapter name in the name (PEFT `RankAllocator.update_ipt`). */
  private tracked(n: string): boolean {
    return n.includes('lora_') && n.includes(this.adapterName);
  }

  /**
   * One EMA step of sensitivity and uncertainty (PEFT `RankAllocator.update_ipt`, paper Eq. 8–9), in f32:
   * `ipt = |p·g|`, `Ī = β1·Ī + (1−β1)·ipt`, `Ū = β2·Ū + (1−β2)·|ipt − Ī|` (the new Ī).
   * Frozen parameters (`trainable === false` on a `tf.Variable`) are skipped instead of crashing
   * (PEFT #1721); an empty (rank-0) parameter without a gradient counts as zero gradient; any other
   * trainable tracked parameter without a gradient is an error naming it.
   * @example alloc.updateIpt(params, grads); // grads: Map of the same names → gradient tensors
   */
  updateIpt(params: ParamMap, grads: ReadonlyMap<string, Tensor>): void {
    if (this.importance === 'magnitude') return;
    const { beta1, beta2 } = this.schedule;
    const items: { n: string; p: Tensor; g: Tensor; own: boolean }[] = [];
    for (const [n, p] of params) {
      if (!this.tracked(n)) continue;
      const given = grads.get(n);
      if (!given && p instanceof tf.Variable && !p.trainable) continue;
      // A fully pruned layer (rank 0) has empty tensors that take no part in the loss: zero gradient.
      const g: Tensor | undefined = given ?? (p.size === 0 ? tf.zerosLike(p) : undefined);
      if (!g) {
        items.forEach((it) => it.own && it.g.dispose());
        throw new ConfigError(
          'RankAllocator.updateIpt',
          'a trainable adapter parameter has no gradient',
          n,
          'pass the gradients of the last backward for every trainable adapter parameter (use zeros for one that took no part in the loss)',
        );
      }
      if (!g.shape.every((d, i) => d === p.shape[i]) || g.rank !== p.rank) {
        items.forEach((it) => it.own && it.g.dispose());
        throw new ShapeError(
          'RankAllocator.updateIpt',
          `gradient shape differs from parameter ${n}`,
          g.shape,
          `expected [${p.shape}]`,
        );
      }
      items.push({ n, p, g, own: !given });
    }
    // One native kernel for every parameter (ops/sensitivity.ts; same float32 values as the composed ops).
    const next = sensitivityEmaAll(
      items.map(({ n, p, g }) => ({
        p,
        g,
        i0: this._expAvgIpt.get(n) ?? null,
        u0: this._expAvgUnc.get(n) ?? null,
      })),
      beta1,
      beta2,
    );
    items.forEach(({ n, g, own }, i) => {
      const [ipt, avgI, avgU] = next[i]!;
      if (own) g.dispose();
      for (const m of [this._ipt, this._expAvgIpt, this._expAvgUnc]) m.get(n)?.dispose();
      this._ipt.set(n, ipt);
      this._expAvgIpt.set(n, avgI);
      this._expAvgUnc.set(n, avgU);
    });
  }

  /**
   * Triplet scores per `lora_E` parameter name, each f32 [r] (PEFT `RankAllocator.mask_to_budget`: S = s(E) + mean over
   * in-features of s(A) + mean over out-features of s(B); magnitude mode: |E| only). Caller disposes.
   */
  tripletScores(params: ParamMap): Map<string, Tensor> {
    return tripletScores(params, this.adapterName, this.importance, this._expAvgIpt, this._expAvgUnc);
  }

  /**
   * Prunes the least important triplets down to `budget` (PEFT `RankAllocator.mask_to_budget`): zeroes the masked `lora_E`
   * entries in place (they must be `tf.Variable`s) and returns the rank pattern. Reads the scores
   * synchronously, so CPU-memory backends only (cpu, native, wasm); on WebGPU/WebGL use
   * {@link maskToBudgetAsync}.
   * @example const pattern = alloc.maskToBudget(params, 32); // { '...q_proj.lora_E.default': [true, false, …] }
   */
  maskToBudget(params: ParamMap, budget: number): RankPattern {
    const scores = this.tripletScores(params);
    try {
      const values = [...scores.values()].map((s) =>
        readDataSync(s, 'RankAllocator.maskToBudget', 'maskToBudgetAsync / updateAndAllocateAsync'),
      );
      return this.applyBudget(params, budget, scores, values);
    } finally {
      scores.forEach((s) => s.dispose());
    }
  }

  /**
   * {@link maskToBudget} reading the scores asynchronously (any backend, GPU included).
   * @example const pattern = await alloc.maskToBudgetAsync(params, 32);
   */
  async maskToBudgetAsync(params: ParamMap, budget: number): Promise<RankPattern> {
    const scores = this.tripletScores(params);
    try {
      const values = await readAll([...scores.values()]);
      return this.applyBudget(params, budget, scores, values);
    } finally {
      scores.forEach((s) => s.dispose());
    }
  }

  /** Threshold at the k-th smallest score (k = initBgt − budget) and the masks, from read scores. */
  private applyBudget(
    params: ParamMap,
    budget: number,
    scores: Map<string, Tensor>,
    values: ArrayLike<number>[],
  ): RankPattern {
    const flat = new Float32Array(values.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of values) {
      flat.set(v, at);
      at += v.length;
    }
    const thr = kthSmallest(flat, this.initBgt - budget);
    const pattern: RankPattern = {};
    [...scores.keys()].forEach((n, i) => {
      const kept = Array.from(values[i]!, (v) => !(v <= thr));
      pattern[n] = kept;
      assignMask(params, n, kept);
    });
    return pattern;
  }

  /**
   * Budget step plus masking (PEFT `AdaLoraModel.update_and_allocate`): EMAs are updated while `step < totalStep − tfinal`; masks
   * when the schedule says so or `forceMask`. Returns the budget and the pattern (null if no mask).
   * CPU-memory backends only; {@link updateAndAllocateAsync} runs anywhere.
   * @example const { budget, rankPattern } = alloc.updateAndAllocate(params, grads, step);
   */
  updateAndAllocate(
    params: ParamMap,
    grads: ReadonlyMap<string, Tensor>,
    step: number,
    forceMask = false,
  ): { budget: number; rankPattern: RankPattern | null } {
    if (step < this.schedule.totalStep - this.schedule.tfinal) this.updateIpt(params, grads);
    const { budget, maskInd } = this.budgetSchedule(step);
    const rankPattern = maskInd || forceMask ? this.maskToBudget(params, budget) : null;
    return { budget, rankPattern };
  }

  /**
   * {@link updateAndAllocate} with the scores read asynchronously (any backend, GPU included).
   * @example const { budget, rankPattern } = await alloc.updateAndAllocateAsync(params, grads, step);
   */
  async updateAndAllocateAsync(
    params: ParamMap,
    grads: ReadonlyMap<string, Tensor>,
    step: number,
    forceMask = false,
  ): Promise<{ budget: number; rankPattern: RankPattern | null }> {
    if (step < this.schedule.totalStep - this.schedule.tfinal) this.updateIpt(params, grads);
    const { budget, maskInd } = this.budgetSchedule(step);
    const rankPattern = maskInd || forceMask ? await this.maskToBudgetAsync(params, budget) : null;
    return { budget, rankPattern };
  }

  /**
   * Re-applies a frozen pattern (PEFT `AdaLoraModel.update_and_allocate`, final phase). Pattern keys may carry the adapter suffix
   * (`…lora_E.default`, in-memory) or not (as saved); only the trailing `.<adapter>` is stripped, so
   * module names containing the adapter name are not corrupted (PEFT replaces every occurrence; a key
   * written that way by PEFT is still found).
   * @example alloc.maskUsingRankPattern(params, config.rankPattern!);
   */
  maskUsingRankPattern(params: ParamMap, rankPattern: RankPattern): void {
    const suffix = `.${this.adapterName}`;
    for (const n of params.keys()) {
      if (!n.includes(`lora_E.${this.adapterName}`)) continue;
      const stripped = n.endsWith(suffix) ? n.slice(0, -suffix.length) : n;
      const kept = rankPattern[n] ?? rankPattern[stripped] ?? rankPattern[replaceAll(n, suffix, '')];
      if (!kept) {
        throw new ConfigError(
          'RankAllocator.maskUsingRankPattern',
          'rank pattern has no entry for this lora_E parameter',
          n,
          `pattern keys are ${JSON.stringify(Object.keys(rankPattern).slice(0, 4))}…; use the pattern produced for this model`,
        );
      }
      assignMask(params, n, kept);
    }
  }

  /**
   * The statistics for a checkpoint, keyed `ipt/<name>`, `avg_ipt/<name>`, `avg_unc/<name>` (live
   * tensors owned by the allocator: copy or serialise them, do not dispose).
   * @example for (const [k, t] of alloc.stateTensors()) writer.add(`allocator/${k}`, t);
   */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [kind, m] of this.kinds()) for (const [n, t] of m) out.set(`${kind}/${n}`, t);
    return out;
  }

  /**
   * Replaces the statistics with copies of `state` (keys as {@link stateTensors}), so a resumed run
   * allocates exactly as an uninterrupted one. The caller keeps ownership of `state`.
   * @example alloc.loadStateTensors(checkpoint.allocatorTensors);
   */
  loadStateTensors(state: ReadonlyMap<string, Tensor>): void {
    const kinds = new Map(this.kinds());
    for (const key of state.keys()) {
      if (!kinds.has(key.slice(0, key.indexOf('/')))) {
        throw new CheckpointError(
          'RankAllocator.loadStateTensors',
          'unknown statistics key (expected ipt/, avg_ipt/ or avg_unc/)',
          key,
          'pass what stateTensors() returned',
        );
      }
    }
    this.resetIpt();
    for (const [key, t] of state)
      kinds.get(key.slice(0, key.indexOf('/')))!.set(key.slice(key.indexOf('/') + 1), tf.clone(t));
  }

  private kinds(): [string, Map<string, Tensor>][] {
    return [
      ['ipt', this._ipt],
      ['avg_ipt', this._expAvgIpt],
      ['avg_unc', this._expAvgUnc],
    ];
  }

  /** Forgets the importance statistics (PEFT `AdaLoraModel.update_and_allocate` at step totalStep − tfinal). */
  resetIpt(): void {
    for (const m of [this._ipt, this._expAvgIpt, this._expAvgUnc]) {
      m.forEach((t) => t.dispose());
      m.clear();
    }
  }

  /** Frees the statistics; the allocator stays usable (statistics restart from zero). */
  dispose(): void {
    this.resetIpt();
  }
}
