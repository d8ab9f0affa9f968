/**
 * "Prune LoRA" (AdaLoRA paper §4.4 / Table 5): structured pruning of plain LoRA doublets (row i of A
 * with column i of B) by the same smoothed sensitivity × uncertainty score and the same cubic budget
 * schedule AdaLoRA uses, so the only difference from AdaLoRA is the parametrisation (BA instead of PΛQ,
 * no orthogonal regulariser).
 *
 * The library's `RankAllocator` scores triplets (P row, λ, Q column). This variant reuses it unchanged
 * by giving it, for every LoRA layer, a unit `lora_E` of shape [r, 1] whose gradient is always zero:
 * its element score is then 0, so the triplet score reduces to the doublet score
 * S_i = mean_j s(A_ij) + mean_j s(B_ji) (paper Eq. 11 without the λ term). The kept flags the allocator
 * computes on the unit vector are applied to A's rows and B's columns (zeroed, i.e. pruned); a pruned
 * doublet has zero gradient, so it stays pruned, except through AdamW momentum, which is why the frozen
 * pattern is re-applied on every step of the final phase (as AdaLoRA re-applies its mask).
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import type { Module } from '../nn/module.js';
import { RankAllocator, type RankPattern } from '../tuners/adalora/rank_allocator.js';
import type { StepHook } from '../training/types.js';

export interface PruneLoraSchedule {
  targetR: number;
  tinit: number;
  tfinal: number;
  totalStep: number;
  deltaT: number;
  beta1?: number;
  beta2?: number;
}

/** Structured doublet pruning for a LoRA-wrapped model (see the file comment). */
export class PruneLoraHook implements StepHook {
  readonly allocator: RankAllocator;
  /** Frozen/last pattern keyed by the unit-E names (`…q_proj.lora_E.default`). */
  pattern: RankPattern | null = null;
  private readonly units = new Map<string, Variable>();
  private readonly zeroGrads = new Map<string, Tensor>();

  /**
   * @example
   * const stepHook = new PruneLoraHook(peft, { targetR: 2, tinit, tfinal, totalStep, deltaT });
   * await trainJob({ model: { model: peft, stepHook }, … });
   */
  constructor(
    readonly model: Module,
    readonly schedule: PruneLoraSchedule,
    readonly adapter = 'default',
  ) {
    for (const [n, p] of this.loraParams()) {
      if (!n.includes(`lora_A.${adapter}`)) continue;
      const e = n.replace('lora_A', 'lora_E');
      this.units.set(
        e,
        tf.tidy(() => tf.variable(tf.ones([p.shape[0]!, 1]), false, `prune_lora_unit/${e}`)), // frees the ones
      );
      this.zeroGrads.set(e, tf.zeros([p.shape[0]!, 1]));
    }
    this.allocator = new RankAllocator(this.params(), { beta1: 0.85, beta2: 0.85, ...schedule }, adapter);
  }

  private loraParams(): [string, Variable][] {
    return this.model
      .namedParameters()
      .filter(([n]) => n.includes(`lora_A.${this.adapter}`) || n.includes(`lora_B.${this.adapter}`));
  }

  /** A, B and the unit E vectors under the allocator's naming. */
  private params(): Map<string, Variable> {
    return new Map<string, Variable>([...this.loraParams(), ...this.units]);
  }

  /** Zeroes A rows and B columns of pruned doublets. */
  private apply(pattern: RankPattern): void {
    const byName = new Map(this.loraParams());
    for (const [e, kept] of Object.entries(pattern)) {
      const a = byName.get(e.replace('lora_E', 'lora_A'))!;
      const b = byName.get(e.replace('lora_E', 'lora_B'))!;
      tf.tidy(() => {
        const m = tf.tensor1d(
          kept.map((k) => (k ? 1 : 0)),
          'float32',
        );
        a.assign(tf.mul(a, m.reshape([-1, 1])));
        b.assign(tf.mul(b, m.reshape([1, -1])));
      });
    }
  }

  afterOptimizerStep(
    step: number,
    grads: ReadonlyMap<string, Tensor>,
  ): { budget: number; ranks?: Record<string, number> } {
    const tFreeze = this.schedule.totalStep - this.schedule.tfinal;
    const params = this.params();
    let budget: number;
    if (step < tFreeze) {
      const named = new Map<string, Tensor>(this.zeroGrads);
      for (const [n, v] of this.loraParams()) {
        const g = grads.get(n) ?? grads.get(`base_model.model.${n}`) ?? grads.get(v.name);
        if (g) named.set(n, g);
      }
      const r = this.allocator.updateAndAllocate(params, named, step);
      budget = r.budget;
      if (r.rankPattern) {
        this.pattern = r.rankPattern;
        this.apply(r.rankPattern);
      }
    } else if (step === tFreeze) {
      const r = this.allocator.updateAndAllocate(params, new Map(), step, true);
      budget = r.budget;
      this.pattern = r.rankPattern;
      this.allocator.resetIpt();
      this.apply(this.pattern!);
    } else {
      budget = this.allocator.targetBgt;
      this.apply(this.pattern!);
    }
    return { budget, ranks: this.ranks() ?? undefined };
  }

  /** Kept doublets per adapted module (`…q_proj`), null before the first pruning. */
  ranks(): Record<string, number> | null {
    if (!this.pattern) return null;
    return Object.fromEntries(
      Object.entries(this.pattern).map(([k, v]) => [
        k.replace(/^base_model\.model\./, '').replace(/\.lora_E\..*$/, ''),
        v.filter(Boolean).length,
      ]),
    );
  }

  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [kind, m] of Object.entries(this.emas())) for (const [n, t] of m) out.set(`${kind}/${n}`, t);
    return out;
  }

  private emas(): Record<string, ReadonlyMap<string, Tensor>> {
    return { ipt: this.allocator.ipt, avg_ipt: this.allocator.expAvgIpt, avg_unc: this.allocator.expAvgUnc };
  }

  stateJson(): unknown {
    return { pattern: this.pattern };
  }

  loadState(tensors: Map<string, Tensor>, json: unknown): void {
    this.allocator.resetIpt();
    const m = this.emas() as Record<string, Map<string, Tensor>>;
    for (const [key, t] of tensors) {
      const slash = key.indexOf('/');
      m[key.slice(0, slash)]?.set(key.slice(slash + 1), tf.clone(t));
    }
    this.pattern = (json as { pattern: RankPattern | null }).pattern;
  }

  dispose(): void {
    this.allocator.dispose();
    tf.dispose([...this.units.values(), ...this.zeroGrads.values()]);
  }
}
