/**
 * `HyperLoraConfig`: a hypernetwork that generates the LoRA factors of every targeted linear layer from
 * a condition (docs/hyperlora.md). Saved as `hyperlora_config.json` (snake_case keys, like PEFT files).
 *
 * @example
 * new HyperLoraConfig({ targetModules: ['q_proj', 'v_proj'], r: 4, numConditions: 3 });
 */
import { ConfigError, NotSupportedError } from '../../errors.js';
import { F, fieldSpecs, type OptionsOf, type ValuesOf } from '../base/config.js';

export type ConditionType = 'id' | 'vector';
/**
 * How the condition enters the hidden layer: 'concat' feeds [e_c; λ_ℓ; μ_t] to fc1 only; 'film' also
 * scales the hidden units by (1 + W_γ e_c) (FiLM, Perez et al. 2018, scale only), so condition and layer
 * interact multiplicatively instead of only through the tanh.
 */
export type Conditioning = 'concat' | 'film';

/**
 * Every HyperLoRA field, declared once: the options type, the instance fields and the
 * `hyperlora_config.json` keys (snake_case, in this order) come from this table.
 */
export const HYPERLORA_FIELDS = {
  /**
   * The linear layers to adapt, matched as PEFT's LoRA matches them (`tuners/base/matching.ts`): a list
   * of names (a key matches when it is a name or ends with `.name`: `q_proj` matches
   * `model.layers.3.self_attn.q_proj`) or one regex string that must match the whole module path.
   */
  targetModules: F.json<string[] | string>([]),
  /** Modules never adapted: a list of names (as targetModules) or a regex (PEFT's `exclude_modules`). */
  excludeModules: F.json<string[] | string | undefined>(undefined),
  /** Only these layer indices (list targets only; PEFT's `layers_to_transform`). */
  layersToTransform: F.json<number | number[] | undefined>(undefined),
  /** Name of the layer list the index follows (e.g. `layers`, `h`; PEFT's `layers_pattern`). */
  layersPattern: F.json<string | string[] | undefined>(undefined),
  /** Rank of the generated factors (default 4). */
  r: F.int(4),
  /** Scaling numerator as in LoRA: scaling = loraAlpha / r (default 2·r, i.e. scaling 2). */
  loraAlpha: F.number<number>(null as unknown as number),
  /** Dropout on the adapter input (default 0). */
  loraDropout: F.float(0),
  /** 'id': a learned embedding per condition id (task, language, user); 'vector': a given vector per row. */
  conditionType: F.str<ConditionType>('id'),
  /** Number of condition ids (conditionType 'id'). */
  numConditions: F.int(0),
  /** Optional names of the condition ids in id order (e.g. task names; the CLI's `--condition`). */
  conditionNames: F.json<string[] | undefined>(undefined),
  /** Length of a condition vector (conditionType 'vector'). */
  conditionDim: F.int(0),
  /** Size of the condition embedding (default 16). */
  embeddingDim: F.int(16),
  /** Size of the learned layer-index embedding (default 8). */
  layerEmbeddingDim: F.int(8),
  /** Size of the learned module-type embedding (default 8). */
  moduleEmbeddingDim: F.int(8),
  /** Width of the hypernetwork's hidden layer (default 32). */
  hiddenDim: F.int(32),
  /** 'concat' (default) or 'film' (see {@link Conditioning}). */
  conditioning: F.str<Conditioning>('concat'),
  /**
   * When true, each target's A is a learned [r, in] matrix shared by every condition and only B is
   * generated (default false: both generated). LoRA's two factors are not symmetric: B carries most of
   * what is task-specific and A can be shared or even random (Zhu et al. 2024, "Asymmetry in Low-Rank
   * Adapters of Foundation Models"; HydraLoRA, Tian et al. 2024, shares one A across task-specific B's),
   * so the hypernetwork spends its width on B alone.
   */
  sharedA: F.bool(false),
};

/** Options of {@link HyperLoraConfig}: `targetModules` is required. */
export type HyperLoraConfigOptions = OptionsOf<typeof HYPERLORA_FIELDS> & {
  targetModules: string[] | string;
};

/** Field names in memory (camelCase) and on disk (snake_case), in file order. */
const FIELDS = fieldSpecs(HYPERLORA_FIELDS);

const W = 'HyperLoraConfig';

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${W}.${name}`, 'must be a positive integer', v);
}

/** The target-matching rules LoRA's config checks (PEFT's `LoraConfig.__post_init__`), with null = unset. */
function checkTargetFields(c: HyperLoraConfig): void {
  const regex = typeof c.targetModules === 'string';
  const ltt = c.layersToTransform ?? null;
  const pattern = c.layersPattern ?? null;
  if (regex && ltt !== null)
    throw new ConfigError(
      `${W}.layersToTransform`,
      'cannot be combined with a regex string targetModules (PEFT applies layer filters only to list targets)',
      ltt,
      'give targetModules as a list of names, or encode the layer indices in the regex',
    );
  if (regex && pattern !== null)
    throw new ConfigError(
      `${W}.layersPattern`,
      'cannot be combined with a regex string targetModules',
      pattern,
      'give targetModules as a list of names, or encode the layer pattern in the regex',
    );
  if (pattern !== null && (Array.isArray(pattern) ? pattern.length > 0 : pattern !== '') && ltt === null)
    throw new ConfigError(
      `${W}.layersPattern`,
      'needs layersToTransform (the pattern only says where layer indices are)',
      pattern,
      'set layersToTransform to the layer indices to adapt, e.g. [0, 1]',
    );
  if (ltt !== null && !(Array.isArray(ltt) ? ltt : [ltt]).every((i) => Number.isInteger(i) && i >= 0))
    throw new ConfigError(
      `${W}.layersToTransform`,
      'must be a layer index or a list of layer indices',
      ltt,
      'use e.g. [0, 2]',
    );
  const ex = c.excludeModules ?? null;
  if (
    ex !== null &&
    !(typeof ex === 'string' || (Array.isArray(ex) && ex.every((n) => typeof n === 'string')))
  )
    throw new ConfigError(
      `${W}.excludeModules`,
      'must be a list of module names or one regex',
      ex,
      "e.g. ['lm_head']",
    );
}

/** Instance fields of {@link HyperLoraConfig}, from {@link HYPERLORA_FIELDS}. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface HyperLoraConfig extends Readonly<ValuesOf<typeof HYPERLORA_FIELDS>> {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class HyperLoraConfig {
  readonly peftType = 'HYPERLORA';

  constructor(o: HyperLoraConfigOptions) {
    const t = o.targetModules;
    if (
      !(Array.isArray(t)
        ? t.length > 0 && t.every((n) => typeof n === 'string')
        : typeof t === 'string' && t !== '')
    ) {
      throw new ConfigError(
        `${W}.targetModules`,
        'must list at least one module name, or be one regex',
        t,
        "e.g. ['q_proj', 'v_proj'] or '.*\\.(q|v)_proj'",
      );
    }
    if (typeof t === 'string' && t.toLowerCase() === 'all-linear')
      throw new NotSupportedError(
        `${W}.targetModules`,
        "'all-linear' for HyperLoRA",
        'list the module names',
      );
    const self = this as unknown as Record<string, unknown>;
    for (const f of FIELDS) self[f.camel] = (o as Record<string, unknown>)[f.camel] ?? f.default;
    self.targetModules = typeof t === 'string' ? t : [...new Set(t)];
    self.loraAlpha = o.loraAlpha ?? 2 * this.r;
    checkTargetFields(this);
    if (this.conditioning !== 'concat' && this.conditioning !== 'film')
      throw new ConfigError(`${W}.conditioning`, "must be 'concat' or 'film'", this.conditioning);

    if (typeof this.sharedA !== 'boolean')
      throw new ConfigError(`${W}.sharedA`, 'must be true or false', this.sharedA);
    for (const k of ['r', 'embeddingDim', 'layerEmbeddingDim', 'moduleEmbeddingDim', 'hiddenDim'] as const)
      positiveInt(k, this[k]);
    if (!(this.loraDropout >= 0 && this.loraDropout < 1))
      throw new ConfigError(`${W}.loraDropout`, 'must be in [0, 1)', this.loraDropout);
    if (this.conditionType === 'id') positiveInt('numConditions', this.numConditions);
    else if (this.conditionType === 'vector') positiveInt('conditionDim', this.conditionDim);
    else throw new ConfigError(`${W}.conditionType`, "must be 'id' or 'vector'", this.conditionType);
    self.conditionNames = o.conditionNames ? [...o.conditionNames] : undefined;
    const names = this.conditionNames;
    if (names) {
      if (this.conditionType !== 'id')
        throw new ConfigError(`${W}.conditionNames`, "needs conditionType 'id'", names, 'drop the names');
      if (
        names.length !== this.numConditions ||
        new Set(names).size !== names.length ||
        names.some((n) => !n)
      )
        throw new ConfigError(
          `${W}.conditionNames`,
          `must be ${this.numConditions} distinct non-empty names (one per condition id)`,
          names,
        );
    }
  }

  /**
   * The condition id of a name in `conditionNames`, or of a decimal id; anything else is a
   * `ConfigError` on the field `condition` listing the choices.
   * @example config.conditionId('shakespeare'); // 0
   */
  conditionId(nameOrId: string): number {
    const byName = this.conditionNames?.indexOf(nameOrId) ?? -1;
    if (byName >= 0) return byName;
    const id = /^\d+$/.test(nameOrId) ? Number(nameOrId) : NaN;
    if (this.conditionType === 'id' && id < this.numConditions) return id;
    throw new ConfigError(
      'condition',
      'is not a condition of this hypernetwork',
      nameOrId,
      this.conditionNames
        ? `use one of ${this.conditionNames.join(', ')}`
        : `use an id in [0, ${this.numConditions})`,
    );
  }

  /** LoRA scaling of the generated factors: loraAlpha / r. */
  get scaling(): number {
    return this.loraAlpha / this.r;
  }

  /** The snake_case JSON object written to `hyperlora_config.json`. */
  toJson(): Record<string, unknown> {
    const out: Record<string, unknown> = { peft_type: this.peftType };
    for (const { camel, snake } of FIELDS) {
      const v = (this as unknown as Record<string, unknown>)[camel];
      if (v !== undefined) out[snake] = v;
    }
    return out;
  }

  /** Inverse of {@link toJson}; unknown keys are rejected. */
  static fromJson(json: Record<string, unknown>): HyperLoraConfig {
    const opts: Record<string, unknown> = {};
    const known = new Map(FIELDS.map((f) => [f.snake, f.camel]));
    for (const [k, v] of Object.entries(json)) {
      if (k === 'peft_type') {
        if (v !== 'HYPERLORA') throw new ConfigError(`${W}.peft_type`, 'must be "HYPERLORA"', v);
        continue;
      }
      const camel = known.get(k);
      if (!camel)
        throw new ConfigError(
          W,
          'unknown key in hyperlora_config.json',
          k,
          'save it again with this version',
        );
      opts[camel] = v;
    }
    return new HyperLoraConfig(opts as unknown as HyperLoraConfigOptions);
  }
}
