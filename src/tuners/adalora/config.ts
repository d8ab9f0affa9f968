/**
 * `AdaLoraConfig` (PEFT adalora/config.py): a `LoraConfig` plus AdaLoRA's schedule and allocator fields,
 * validated in PEFT's `__post_init__` order, plus the checks PEFT lacks (values PEFT accepts and later fails
 * on): `targetR < initR` (else the allocator's k ≤ 0 crashes), integer `deltaT ≥ 1` (else `step % 0`),
 * `0 < beta < 1` (PEFT only asserts at model build), `tinit ≥ 0`, `tfinal ≥ 0`, and integer
 * `totalStep`, `initR`, `targetR`. LoRA fields AdaLoRA ignores (`r`, `useRslora`, `alphaPattern`,
 * `loraBias`, string `initLoraWeights`) produce a warning instead of being silently dropped.
 *
 * `importanceMetric` is a lowrank-only training switch for ablations (see `rank_allocator.ts`); it is
 * never written to `adapter_config.json`, so files stay PEFT's.
 *
 * @example
 * const cfg = new AdaLoraConfig({ initR: 12, targetR: 8, tinit: 200, tfinal: 1000, deltaT: 10,
 *   totalStep: 3000, targetModules: ['query', 'value'] });
 * cfg.peftType; // 'ADALORA'
 */
import { ConfigError } from '../../errors.js';
import { F, fieldSpecs, type FieldSpec, type OptionsOf, type ValuesOf } from '../base/config.js';
import { collectWarnings, tunerWarn } from '../base/warnings.js';
import { LoraConfig, type LoraConfigOptions } from '../lora/config.js';
import type { ImportanceMetric, RankPattern } from './rank_allocator.js';

/** AdaLoRA's own fields, declared once (appended to LoRA's; `rankPattern` replaces LoRA's). */
export const ADALORA_FIELDS = {
  /** Target *average* rank per adapted matrix (default 8). */
  targetR: F.int(8),
  /** Initial rank of every adapted matrix (default 12); `r` is ignored. */
  initR: F.int(12),
  /** Warm-up steps without pruning (default 0). */
  tinit: F.int(0),
  /** Final steps with a frozen rank pattern, counted from the end (default 0). */
  tfinal: F.int(0),
  /** Pruning interval during the budgeting phase (default 1). */
  deltaT: F.int(1, { snake: 'deltaT' }),
  /** EMA coefficient of the sensitivity (default 0.85). */
  beta1: F.float(0.85),
  /** EMA coefficient of the uncertainty (default 0.85). */
  beta2: F.float(0.85),
  /** Weight of the orthogonal regulariser added to the model's loss (default 0.5). */
  orthRegWeight: F.float(0.5),
  /** Total optimizer steps of the run: required, > 0. */
  totalStep: F.int<number>(null as unknown as number),
  /**
   * `{ lora_E param name: kept flags }`, written by the allocator (default null). PEFT overrides LoRA's
   * `rank_pattern` (dict of ints, default {}) with `Optional[dict]` = None.
   */
  rankPattern: F.json<RankPattern | null>(null),
  /** lowrank-only ablation switch, not saved (default 'sensitivity-uncertainty', PEFT's). */
  importanceMetric: F.str<ImportanceMetric>('sensitivity-uncertainty', { saved: false }),
};

/** Options of {@link AdaLoraConfig}. */
export type AdaLoraConfigOptions = Omit<LoraConfigOptions, 'rankPattern'> &
  Omit<OptionsOf<typeof ADALORA_FIELDS>, 'totalStep'> & { totalStep?: number | null };

const IMPORTANCE: readonly ImportanceMetric[] = ['sensitivity-uncertainty', 'sensitivity', 'magnitude'];

/** Instance fields of {@link AdaLoraConfig} (`rankPattern` stays LoRA-typed on the class, see below). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface AdaLoraConfig extends Omit<ValuesOf<typeof ADALORA_FIELDS>, 'rankPattern'> {}

/** AdaLoRA configuration (PEFT `AdaLoraConfig`). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class AdaLoraConfig extends LoraConfig {
  static override readonly fields: readonly FieldSpec[] = [
    ...LoraConfig.fields.filter((f) => f.camel !== 'rankPattern'),
    ...fieldSpecs(ADALORA_FIELDS),
  ];

  /** Typed `RankPattern | null` (see {@link AdaLoraConfig.pattern}); `any` only because LoRA's field is a rank dict. */
  declare rankPattern: any;

  constructor(options: AdaLoraConfigOptions = {}) {
    super(options as LoraConfigOptions);
  }

  /** A copy with some fields replaced; the ignored-field warnings are not repeated (saving clones). */
  override clone(overrides: Record<string, unknown> = {}): this {
    return collectWarnings(() => super.clone(overrides)).result;
  }

  /** The rank pattern with its AdaLoRA type (`null` until the allocator has masked once). */
  get pattern(): RankPattern | null {
    return this.rankPattern as RankPattern | null;
  }

  /** PEFT `AdaLoraConfig.__post_init__` order (adalora/config.py), then the checks PEFT lacks. */
  protected override postInit(): void {
    super.postInit(); // LoRA's checks (PEFT runs them first; some of AdaLoRA's repeat them)
    const W = 'AdaLoraConfig';
    this.peftType = 'ADALORA'; // 1
    if (this.useDora) {
      // 2
      throw new ConfigError(
        `${W}.useDora`,
        'AdaLoRA does not support DoRA',
        true,
        'set useDora: false, or use LoraConfig for DoRA',
      );
    }
    if (this.initLoraWeights === 'loftq') {
      // 3: LoRA's post-init kept loftqConfig only for init 'loftq' (and required it there)
      throw new ConfigError(
        `${W}.initLoraWeights`,
        'AdaLoRA does not support LoftQ (PEFT: "ADALORA does not support LOFTQ.")',
        'loftq',
        'use LoraConfig for LoftQ, or another init',
      );
    }
    if (this.r !== 8) {
      // 7 (PEFT warns the same way)
      tunerWarn(
        `${W}.r is not used by AdaLoRA and is ignored (got ${this.r}); set the initial rank with initR instead.`,
      );
    }
    if (this.useRslora)
      tunerWarn(`${W}.useRslora is ignored by AdaLoRA (its scale is loraAlpha / (ranknum + 1e-5)).`);
    if (Object.keys(this.alphaPattern ?? {}).length > 0)
      tunerWarn(`${W}.alphaPattern is ignored by AdaLoRA (every layer uses loraAlpha).`);
    if (this.loraBias) tunerWarn(`${W}.loraBias is ignored by AdaLoRA (SVD layers have no extra bias).`);
    if (typeof this.initLoraWeights === 'string') {
      tunerWarn(
        `${W}.initLoraWeights "${this.initLoraWeights}" is treated as true by AdaLoRA (A, B ~ N(0, 0.02²), E = 0).`,
      );
    }
    // 8: mandatory total step count.
    if (
      this.totalStep === null ||
      this.totalStep === undefined ||
      !(this.totalStep > 0) ||
      !Number.isInteger(this.totalStep)
    ) {
      throw new ConfigError(
        `${W}.totalStep`,
        'is required and must be a positive integer (the number of optimizer steps of the run)',
        this.totalStep,
        'pass totalStep, e.g. epochs × steps per epoch',
      );
    }
    // 9
    if (typeof this.orthRegWeight !== 'number' || !(this.orthRegWeight >= 0)) {
      throw new ConfigError(
        `${W}.orthRegWeight`,
        'must be a number ≥ 0',
        this.orthRegWeight,
        'use 0.5 (PEFT default), or 0 to disable the regulariser',
      );
    }
    // Checks PEFT lacks, before step 10 because it reads them.
    for (const f of ['tinit', 'tfinal'] as const) {
      if (!Number.isInteger(this[f]) || this[f] < 0) {
        throw new ConfigError(
          `${W}.${f}`,
          'must be an integer ≥ 0 (a number of steps)',
          this[f],
          'use 0 for no warm-up / final phase',
        );
      }
    }
    // 10: the schedule must leave a budgeting phase (steps tinit+1 … totalStep−tfinal).
    if (this.tinit >= this.totalStep - this.tfinal) {
      throw new ConfigError(
        W,
        'tinit must be smaller than totalStep − tfinal, so that a budgeting phase exists',
        { totalStep: this.totalStep, tinit: this.tinit, tfinal: this.tfinal },
        'decrease tinit or tfinal, or increase totalStep',
      );
    }
    if (!Number.isInteger(this.initR) || this.initR < 1) {
      throw new ConfigError(`${W}.initR`, 'must be a positive integer', this.initR, 'use e.g. 12');
    }
    if (!Number.isInteger(this.targetR) || this.targetR < 0 || this.targetR >= this.initR) {
      throw new ConfigError(
        `${W}.targetR`,
        `must be an integer in [0, initR) (initR = ${this.initR}): the allocator can only prune`,
        this.targetR,
        'lower targetR or raise initR',
      );
    }
    if (!Number.isInteger(this.deltaT) || this.deltaT < 1) {
      throw new ConfigError(
        `${W}.deltaT`,
        'must be an integer ≥ 1 (steps between masking)',
        this.deltaT,
        'use 1 to mask every step, or e.g. 10',
      );
    }
    for (const f of ['beta1', 'beta2'] as const) {
      if (typeof this[f] !== 'number' || !(this[f] > 0 && this[f] < 1)) {
        throw new ConfigError(
          `${W}.${f}`,
          'must be strictly between 0 and 1 (an EMA coefficient)',
          this[f],
          'use 0.85 (PEFT default)',
        );
      }
    }
    if (!IMPORTANCE.includes(this.importanceMetric)) {
      throw new ConfigError(
        `${W}.importanceMetric`,
        `must be one of ${IMPORTANCE.join(', ')}`,
        this.importanceMetric,
        'omit it for PEFT behaviour',
      );
    }
    validatePattern(this.rankPattern);
  }

  /** LoRA's common checks without its integer `rankPattern` rule (AdaLoRA's pattern holds bool lists). */
  protected override validateCommon(): void {
    const saved = this.rankPattern;
    this.rankPattern = {};
    try {
      super.validateCommon();
    } finally {
      this.rankPattern = saved;
    }
  }

  /** AdaLoRA never reads `r` (PEFT adalora/config.py warns it is ignored); `initR` is checked in `postInit`. */
  protected override validateRank(): void {}
}

function validatePattern(p: unknown): void {
  if (p === null) return;
  const bad = (got: unknown) =>
    new ConfigError(
      'AdaLoraConfig.rankPattern',
      'must be null or an object of lora_E names → lists of booleans',
      got,
      'leave it null; the rank allocator fills it',
    );
  if (typeof p !== 'object' || Array.isArray(p)) throw bad(p);
  for (const [k, v] of Object.entries(p as object)) {
    if (!Array.isArray(v) || !v.every((b) => typeof b === 'boolean')) throw bad({ [k]: v });
  }
}
