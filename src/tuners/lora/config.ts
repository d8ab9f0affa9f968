/**
 * `LoraConfig`: every field and default of PEFT's LoRA config (PEFT-SPEC §6) plus the base fields
 * (§6 "Base"), validated in PEFT's `__post_init__` order with clearer typed errors, plus checks PEFT
 * lacks (rank and dropout ranges, pattern values, bias values at config time, unsupported features
 * rejected instead of silently ignored).
 *
 * EXTENSION POINTS:
 *  - `AdaLoraConfig extends LoraConfig` (PEFT-SPEC §1): append to `static fields`, override `postInit()`
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
import { PeftConfig, field, type FieldSpec, type PeftConfigOptions } from '../base/config.js';
import { tunerWarn } from '../base/warnings.js';

/** `init_lora_weights` values this library implements (PEFT-SPEC §6 "Init"). */
export type LoraInit = boolean | 'gaussian' | 'pissa' | 'olora' | 'loftq';
export type LoraBias = 'none' | 'all' | 'lora_only';

const SUPPORTED_INITS: readonly unknown[] = [true, false, 'gaussian', 'pissa', 'olora', 'loftq'];
/** PEFT init values we know but do not implement: rejected with NotSupportedError, never ignored. */
const KNOWN_UNSUPPORTED_INITS = ['eva', 'corda', 'orthogonal', 'lora_ga'];

export interface LoraConfigOptions extends PeftConfigOptions {
  r?: number;
  targetModules?: string[] | string | null;
  excludeModules?: string[] | string | null;
  loraAlpha?: number;
  loraDropout?: number;
  fanInFanOut?: boolean;
  bias?: LoraBias;
  useRslora?: boolean;
  modulesToSave?: string[] | null;
  /** PEFT's init_lora_weights; 'loftq' needs `loftqConfig` and an f32 base (see `loftqInit`). */
  initLoraWeights?: LoraInit;
  layersToTransform?: number | number[] | null;
  layersPattern?: string | string[] | null;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  useDora?: boolean;
  loraBias?: boolean;
  /** PEFT's LoftQConfig as on disk: `{ loftq_bits: 4, loftq_iter: 1 }` (only 4 bits here). */
  loftqConfig?: Record<string, unknown>;
  layerReplication?: [number, number][] | null;
  targetParameters?: string[] | null;
  trainableTokenIndices?: unknown;
  megatronConfig?: Record<string, unknown> | null;
  megatronCore?: string | null;
  useQalora?: boolean;
  qaloraGroupSize?: number;
  ensureWeightTying?: boolean;
  aloraInvocationTokens?: number[] | null;
  evaConfig?: unknown;
  cordaConfig?: unknown;
  loraGaConfig?: unknown;
  veloraConfig?: unknown;
  montecloraConfig?: unknown;
  arrowConfig?: unknown;
  kasaConfig?: unknown;
  useBdlora?: unknown;
}

/** Fields PEFT has that this library does not implement: setting them is an error, not a no-op. */
const UNSUPPORTED_NULLABLE: [keyof LoraConfigOptions, string][] = [
  ['layerReplication', 'layer_replication'],
  ['targetParameters', 'target_parameters'],
  ['trainableTokenIndices', 'trainable_token_indices'],
  ['megatronConfig', 'megatron_config'],
  ['aloraInvocationTokens', 'alora_invocation_tokens'],
  ['evaConfig', 'eva_config'],
  ['cordaConfig', 'corda_config'],
  ['loraGaConfig', 'lora_ga_config'],
  ['veloraConfig', 'velora_config'],
  ['montecloraConfig', 'monteclora_config'],
  ['arrowConfig', 'arrow_config'],
  ['kasaConfig', 'kasa_config'],
  ['useBdlora', 'use_bdlora'],
];

/** LoRA configuration (PEFT `LoraConfig`). */
export class LoraConfig extends PeftConfig {
  static override readonly fields: readonly FieldSpec[] = [
    ...PeftConfig.fields,
    field('r', 'r', 'int', 8),
    field('targetModules', 'target_modules', 'strset', null),
    field('excludeModules', 'exclude_modules', 'strset', null),
    field('loraAlpha', 'lora_alpha', 'number', 8),
    field('loraDropout', 'lora_dropout', 'float', 0),
    field('fanInFanOut', 'fan_in_fan_out', 'bool', false),
    field('bias', 'bias', 'str', 'none'),
    field('useRslora', 'use_rslora', 'bool', false),
    field('modulesToSave', 'modules_to_save', 'json', null),
    field('initLoraWeights', 'init_lora_weights', 'json', true),
    field('layersToTransform', 'layers_to_transform', 'json', null),
    field('layersPattern', 'layers_pattern', 'json', null),
    field('rankPattern', 'rank_pattern', 'json', {}),
    field('alphaPattern', 'alpha_pattern', 'json', {}),
    field('useDora', 'use_dora', 'bool', false),
    field('loraBias', 'lora_bias', 'bool', false),
    field('loftqConfig', 'loftq_config', 'json', {}),
    field('layerReplication', 'layer_replication', 'json', null),
    field('targetParameters', 'target_parameters', 'json', null),
    field('trainableTokenIndices', 'trainable_token_indices', 'json', null),
    field('megatronConfig', 'megatron_config', 'json', null),
    field('megatronCore', 'megatron_core', 'str', 'megatron.core'),
    field('useQalora', 'use_qalora', 'bool', false),
    field('qaloraGroupSize', 'qalora_group_size', 'int', 16),
    field('ensureWeightTying', 'ensure_weight_tying', 'bool', false),
    field('aloraInvocationTokens', 'alora_invocation_tokens', 'json', null),
    field('evaConfig', 'eva_config', 'json', null),
    field('cordaConfig', 'corda_config', 'json', null),
    field('loraGaConfig', 'lora_ga_config', 'json', null),
    field('veloraConfig', 'velora_config', 'json', null),
    field('montecloraConfig', 'monteclora_config', 'json', null),
    field('arrowConfig', 'arrow_config', 'json', null),
    field('kasaConfig', 'kasa_config', 'json', null),
    field('useBdlora', 'use_bdlora', 'json', null),
    field('runtimeConfig', 'runtime_config', 'json', null, false),
  ];

  declare r: number;
  declare targetModules: string[] | string | null;
  declare excludeModules: string[] | string | null;
  declare loraAlpha: number;
  declare loraDropout: number;
  declare fanInFanOut: boolean;
  declare bias: LoraBias;
  declare useRslora: boolean;
  declare modulesToSave: string[] | null;
  declare initLoraWeights: LoraInit;
  declare layersToTransform: number | number[] | null;
  declare layersPattern: string | string[] | null;
  declare rankPattern: Record<string, number>;
  declare alphaPattern: Record<string, number>;
  declare useDora: boolean;
  declare loraBias: boolean;
  declare loftqConfig: Record<string, unknown>;
  declare layerReplication: [number, number][] | null;
  declare targetParameters: string[] | null;
  declare trainableTokenIndices: unknown;
  declare megatronConfig: Record<string, unknown> | null;
  declare megatronCore: string | null;
  declare useQalora: boolean;
  declare qaloraGroupSize: number;
  declare ensureWeightTying: boolean;
  declare aloraInvocationTokens: number[] | null;
  declare evaConfig: unknown;
  declare cordaConfig: unknown;
  declare loraGaConfig: unknown;
  declare veloraConfig: unknown;
  declare montecloraConfig: unknown;
  declare arrowConfig: unknown;
  declare kasaConfig: unknown;
  declare useBdlora: unknown;
  declare runtimeConfig: unknown;

  constructor(options: LoraConfigOptions = {}) {
    super(options);
  }

  /** PEFT `LoraConfig.__post_init__` (PEFT-SPEC §6 "Post-init errors", same order), then our extra checks. */
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
    for (const [camel, snake] of UNSUPPORTED_NULLABLE) {
      if (isTruthy((this as Record<string, unknown>)[camel])) {
        throw new NotSupportedError(
          `${W}.${camel}`,
          `PEFT's ${snake}`,
          `remove ${camel} (or set it to null)`,
        );
      }
    }
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

function isTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
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
