/**
 * `LoraConfig`: every field and default of PEFT's LoRA config (PEFT lora/config.py) plus the base fields
 * (§6 "Base"), validated in PEFT's `__post_init__` order with clearer typed errors, plus checks PEFT
 * lacks (rank and dropout ranges, pattern values, bias values at config time, unsupported features
 * rejected instead of silently ignored).
 *
 * EXTENSION POINTS:
 *  - the fields are declared once in `LORA_FIELDS` (tuners/base/config.ts explains the builder).
 *  - `AdaLoraConfig extends LoraConfig` (as in PEFT adalora/config.py): append to `static fields`, override
 * `postInit()`
 *    (call `super.postInit()` first, then set `peftType = 'ADALORA'`), and override
 *    `validateRank()` (AdaLoRA ignores `r`, so its check differs).
 *  - `useDora: true` is resolved at layer creation through the variant registry
 *    (`tuners/lora/variant.ts`); a config can be built before the DoRA module is loaded.
 *
 * @example
 * const cfg = new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], taskType: 'CAUSAL_LM' });
 * cfg.peftType; // 'LORA'
 */
import { ConfigError, NotSupportedError } from '../../errors.js';
import {
  F,
  PeftConfig,
  fieldSpecs,
  isTruthy,
  rejectUnsupported,
  type FieldSpec,
  type OptionsOf,
  type PeftConfigOptions,
  type ValuesOf,
} from '../base/config.js';
import { tunerWarn } from '../base/warnings.js';

/** `init_lora_weights` values this library implements (PEFT lora/config.py `init_lora_weights`). */
export type LoraInit = boolean | 'gaussian' | 'pissa' | 'olora' | 'loftq';
export type LoraBias = 'none' | 'all' | 'lora_only';

const SUPPORTED_INITS: readonly unknown[] = [true, false, 'gaussian', 'pissa', 'olora', 'loftq'];
/** PEFT init values we know but do not implement: rejected with NotSupportedError, never ignored. */
const KNOWN_UNSUPPORTED_INITS = ['eva', 'corda', 'orthogonal', 'lora_ga'];

/** Every LoRA field, declared once: options type, instance fields, JSON schema, unsupported checks. */
export const LORA_FIELDS = {
  r: F.int(8),
  targetModules: F.strset<string[] | string | null>(null),
  excludeModules: F.strset<string[] | string | null>(null),
  loraAlpha: F.number(8),
  loraDropout: F.float(0),
  fanInFanOut: F.bool(false),
  bias: F.str<LoraBias>('none'),
  useRslora: F.bool(false),
  modulesToSave: F.json<string[] | null>(null),
  /** PEFT's init_lora_weights; 'loftq' needs `loftqConfig` and an f32 base (see `loftqInit`). */
  initLoraWeights: F.json<LoraInit>(true),
  layersToTransform: F.json<number | number[] | null>(null),
  layersPattern: F.json<string | string[] | null>(null),
  rankPattern: F.json<Record<string, number>>({}),
  alphaPattern: F.json<Record<string, number>>({}),
  useDora: F.bool(false),
  loraBias: F.bool(false),
  /** PEFT's LoftQConfig as on disk: `{ loftq_bits: 4, loftq_iter: 1 }` (only 4 bits here). */
  loftqConfig: F.json<Record<string, unknown>>({}),
  // PEFT fields this library does not implement: setting them is an error, not a no-op.
  layerReplication: F.json<[number, number][] | null>(null, { unsupported: true }),
  targetParameters: F.json<string[] | null>(null, { unsupported: true }),
  trainableTokenIndices: F.json<unknown>(null, { unsupported: true }),
  megatronConfig: F.json<Record<string, unknown> | null>(null, { unsupported: true }),
  megatronCore: F.str<string | null>('megatron.core'),
  useQalora: F.bool(false),
  qaloraGroupSize: F.int(16),
  ensureWeightTying: F.bool(false),
  aloraInvocationTokens: F.json<number[] | null>(null, { unsupported: true }),
  evaConfig: F.json<unknown>(null, { unsupported: true }),
  cordaConfig: F.json<unknown>(null, { unsupported: true }),
  loraGaConfig: F.json<unknown>(null, { unsupported: true }),
  veloraConfig: F.json<unknown>(null, { unsupported: true }),
  montecloraConfig: F.json<unknown>(null, { unsupported: true }),
  arrowConfig: F.json<unknown>(null, { unsupported: true }),
  kasaConfig: F.json<unknown>(null, { unsupported: true }),
  useBdlora: F.json<unknown>(null, { unsupported: true }),
  runtimeConfig: F.json<unknown>(null, { saved: false }),
};

/** Options of {@link LoraConfig} (`runtimeConfig` is set by the library, not by callers). */
export type LoraConfigOptions = PeftConfigOptions & Omit<OptionsOf<typeof LORA_FIELDS>, 'runtimeConfig'>;

/** Instance fields of {@link LoraConfig}, from {@link LORA_FIELDS}. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface LoraConfig extends ValuesOf<typeof LORA_FIELDS> {}

/** LoRA configuration (PEFT `LoraConfig`). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class LoraConfig extends PeftConfig {
  static override readonly fields: readonly FieldSpec[] = [...PeftConfig.fields, ...fieldSpecs(LORA_FIELDS)];

  constructor(options: LoraConfigOptions = {}) {
    super(options);
  }

  /** PEFT `LoraConfig.__post_init__` (lora/config.py, its errors in the same order), then our extra checks. */
  protected override postInit(): void {
    super.postInit();
    this.peftType = 'LORA';
    const W = this.constructor.name;
    if (Array.isArray(this.targetModules)) this.targetModules = [...new Set(this.targetModules)];
    if (Array.isArray(this.excludeModules)) this.excludeModules = [...new Set(this.excludeModules)];
    if (typeof this.targetParameters === 'string') {
      throw new ConfigError(
        `${W}.targetParameters`,
        'must be a list of parameter names, not a string',
        this.targetParameters,
        'wrap it in an array',
      );
    }
    if (typeof this.targetModules === 'string' && this.layersToTransform !== null) {
      throw new ConfigError(
        `${W}.layersToTransform`,
        'cannot be combined with a regex string targetModules (PEFT applies layer filters only to list targets)',
        this.layersToTransform,
        'give targetModules as a list of names, or encode the layer indices in the regex',
      );
    }
    if (typeof this.targetModules === 'string' && this.layersPattern !== null) {
      throw new ConfigError(
        `${W}.layersPattern`,
        'cannot be combined with a regex string targetModules',
        this.layersPattern,
        'give targetModules as a list of names, or encode the layer pattern in the regex',
      );
    }
    if (isTruthy(this.layersPattern) && this.layersToTransform === null) {
      throw new ConfigError(
        `${W}.layersPattern`,
        'needs layersToTransform (the pattern only says where layer indices are)',
        this.layersPattern,
        'set layersToTransform to the layer indices to adapt, e.g. [0, 1]',
      );
    }
    if (this.useDora && this.megatronConfig) {
      throw new ConfigError(
        `${W}.useDora`,
        'DoRA does not support megatronConfig',
        true,
        'set useDora: false',
      );
    }
    if (this.initLoraWeights === 'loftq' && Object.keys(this.loftqConfig ?? {}).length === 0) {
      throw new ConfigError(
        `${W}.loftqConfig`,
        "is required when initLoraWeights is 'loftq'",
        this.loftqConfig,
        'pass loftqConfig',
      );
    } else if (this.initLoraWeights !== 'loftq' && Object.keys(this.loftqConfig ?? {}).length > 0) {
      tunerWarn(`${W}.loftqConfig is ignored because initLoraWeights is not 'loftq'; it is reset to {}.`);
      this.loftqConfig = {};
    }
    if (this.initLoraWeights === 'loftq') loftqOptions(this.loftqConfig); // validates it
    if (this.loraBias && typeof this.initLoraWeights !== 'boolean') {
      throw new ConfigError(
        `${W}.loraBias`,
        'requires initLoraWeights to be true or false (data-driven inits cannot set the extra bias)',
        this.initLoraWeights,
        'set loraBias: false or initLoraWeights: true',
      );
    }
    if (this.loraBias && this.useDora) {
      throw new ConfigError(
        `${W}.loraBias`,
        'is not supported together with useDora',
        true,
        'set loraBias: false or useDora: false',
      );
    }
    this.validateCommon();
  }

  /** Checks PEFT only does later (at layer build) or never; run after PEFT's own post-init checks. */
  protected validateCommon(): void {
    const W = this.constructor.name;
    this.validateRank();
    if (typeof this.loraAlpha !== 'number' || !Number.isFinite(this.loraAlpha)) {
      throw new ConfigError(
        `${W}.loraAlpha`,
        'must be a finite number',
        this.loraAlpha,
        'use e.g. loraAlpha: 16',
      );
    }
    if (typeof this.loraDropout !== 'number' || !(this.loraDropout >= 0 && this.loraDropout < 1)) {
      throw new ConfigError(
        `${W}.loraDropout`,
        'must be a probability in [0, 1)',
        this.loraDropout,
        'use e.g. 0.05, or 0 for none',
      );
    }
    if (!['none', 'all', 'lora_only'].includes(this.bias)) {
      throw new ConfigError(
        `${W}.bias`,
        'must be "none", "all" or "lora_only"',
        this.bias,
        'pick one of the three',
      );
    }
    const init = this.initLoraWeights as unknown;
    if (!SUPPORTED_INITS.includes(init)) {
      const known =
        typeof init === 'string' &&
        (KNOWN_UNSUPPORTED_INITS.includes(init) || init.startsWith('pissa_niter_'));
      if (known)
        throw new NotSupportedError(
          `${W}.initLoraWeights`,
          `init "${init}"`,
          'use true, false, "gaussian", "pissa", "olora" or "loftq"',
        );
      throw new ConfigError(
        `${W}.initLoraWeights`,
        'must be true, false, "gaussian", "pissa", "olora" or "loftq"',
        init,
        'pick one of these',
      );
    }
    for (const [k, v] of Object.entries(this.rankPattern ?? {})) {
      if (!Number.isInteger(v) || v <= 0) {
        throw new ConfigError(`${W}.rankPattern["${k}"]`, 'must be a positive integer rank', v, 'use e.g. 4');
      }
    }
    for (const [k, v] of Object.entries(this.alphaPattern ?? {})) {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new ConfigError(`${W}.alphaPattern["${k}"]`, 'must be a finite number', v, 'use e.g. 16');
      }
    }
    const ltt = this.layersToTransform;
    if (
      ltt !== null &&
      !(Number.isInteger(ltt) || (Array.isArray(ltt) && ltt.every((i) => Number.isInteger(i) && i >= 0)))
    ) {
      throw new ConfigError(
        `${W}.layersToTransform`,
        'must be a layer index or a list of layer indices',
        ltt,
        'use e.g. [0, 2]',
      );
    }
    rejectUnsupported(this, W);
    if (this.useQalora) throw new NotSupportedError(`${W}.useQalora`, 'QA-LoRA', 'set useQalora: false');
  }

  /** `r` must be a positive integer (PEFT checks this only when a layer is built). AdaLoRA overrides. */
  protected validateRank(): void {
    if (!Number.isInteger(this.r) || this.r <= 0) {
      throw new ConfigError(
        `${this.constructor.name}.r`,
        'must be a positive integer rank',
        this.r,
        'use e.g. r: 8',
      );
    }
  }
}

/** PEFT's `LoftQConfig` (utils/loftq_utils.py): bits of the quantiser and alternating rounds. */
export interface LoftqOptions {
  bits: number;
  iters: number;
}

/**
 * Reads `loftqConfig` (PEFT's `LoftQConfig` JSON: `{ loftq_bits: 4, loftq_iter: 1 }`, both optional
 * with those defaults). PEFT accepts 2, 4 and 8 bits; lowrank's quantiser is the bitsandbytes NF4 one,
 * so only 4 is supported.
 * @example loftqOptions({ loftq_iter: 5 }); // { bits: 4, iters: 5 }
 */
export function loftqOptions(json: Record<string, unknown>): LoftqOptions {
  const where = 'LoraConfig.loftqConfig';
  for (const k of Object.keys(json)) {
    if (k !== 'loftq_bits' && k !== 'loftq_iter')
      throw new ConfigError(
        where,
        "has an unknown key (PEFT's LoftQConfig has loftq_bits and loftq_iter)",
        k,
        'remove it',
      );
  }
  const bits = json.loftq_bits ?? 4;
  const iters = json.loftq_iter ?? 1;
  if (bits !== 2 && bits !== 4 && bits !== 8)
    throw new ConfigError(`${where}.loftq_bits`, 'must be 2, 4 or 8 (as PEFT)', bits, 'use 4');
  if (bits !== 4)
    throw new NotSupportedError(
      `${where}.loftq_bits`,
      `LoftQ with ${bits}-bit quantisation`,
      'use loftq_bits: 4 (NF4)',
    );
  if (typeof iters !== 'number' || !Number.isInteger(iters) || iters <= 0)
    throw new ConfigError(
      `${where}.loftq_iter`,
      'must be a positive integer (number of alternating rounds)',
      iters,
      'use 1, or 5 for a closer fit',
    );
  return { bits, iters };
}
