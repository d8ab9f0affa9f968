/**
 * Which `adapter_config.json` keys each PEFT release knows, as data, and the writer that keeps lowrank's
 * files loadable by every release from 0.10 on.
 *
 * Source of the table: the dataclass fields of `PeftConfigMixin`/`PeftConfig`, `LoraConfig` and
 * `AdaLoraConfig` in huggingface/peft at the git tags v0.10.0 … v0.20.0 (every non-rc release tag in
 * that range), read on 2026-12-07. A key's entry is the first release whose config class declares it.
 * Releases before 0.14.0 construct the config with `cls(**json)` and raise `TypeError: unexpected
 * keyword argument` on any key they do not know; from 0.14.0 on unknown keys are dropped with a warning
 * ("Unexpected keyword arguments [...]"), which silently loses what the key meant.
 *
 * The rule when saving (issue 15): a key an older release does not know is written only when its value
 * differs from the default; the file then needs the newest release among its keys, and the saver says
 * so. No key that no release declares is written (`kasa_config` exists only on PEFT's main branch).
 * `peft_version` (0.18.0+) is written only when the file already needs 0.18.0 or later, and then says
 * that version: the oldest PEFT release that reads the file completely.
 */
import { pyJsonDumps, type PyJson } from './py_json.js';
import type { PeftConfig } from './config.js';

/** Every PEFT release (non-rc tags) from 0.10.0 to 0.20.0, oldest first. */
export const PEFT_RELEASES = [
  '0.10.0',
  '0.11.0',
  '0.11.1',
  '0.12.0',
  '0.13.0',
  '0.13.1',
  '0.13.2',
  '0.14.0',
  '0.15.0',
  '0.15.1',
  '0.15.2',
  '0.16.0',
  '0.17.0',
  '0.17.1',
  '0.18.0',
  '0.18.1',
  '0.19.0',
  '0.19.1',
  '0.20.0',
] as const;
export type PeftRelease = (typeof PEFT_RELEASES)[number];

/** The oldest release lowrank's files target. */
export const OLDEST_PEFT: PeftRelease = '0.10.0';

/** First release that ignores unknown keys (with a warning) instead of raising TypeError. */
export const TOLERANT_SINCE: PeftRelease = '0.14.0';

/** `PeftConfigMixin` / `PeftConfig` keys (every tuner). */
const BASE_KEYS: Record<string, PeftRelease> = {
  peft_type: '0.10.0',
  task_type: '0.10.0',
  inference_mode: '0.10.0',
  base_model_name_or_path: '0.10.0',
  revision: '0.10.0',
  auto_mapping: '0.10.0',
  peft_version: '0.18.0',
};

/** `LoraConfig` keys (AdaLoRA inherits them). `runtime_config` (0.12.0) is never saved by PEFT. */
const LORA_KEYS: Record<string, PeftRelease> = {
  r: '0.10.0',
  target_modules: '0.10.0',
  lora_alpha: '0.10.0',
  lora_dropout: '0.10.0',
  fan_in_fan_out: '0.10.0',
  bias: '0.10.0',
  use_rslora: '0.10.0',
  modules_to_save: '0.10.0',
  init_lora_weights: '0.10.0',
  layers_to_transform: '0.10.0',
  layers_pattern: '0.10.0',
  rank_pattern: '0.10.0',
  alpha_pattern: '0.10.0',
  megatron_config: '0.10.0',
  megatron_core: '0.10.0',
  loftq_config: '0.10.0',
  use_dora: '0.10.0',
  layer_replication: '0.10.0',
  exclude_modules: '0.14.0',
  lora_bias: '0.14.0',
  eva_config: '0.14.0',
  corda_config: '0.15.0',
  trainable_token_indices: '0.15.0',
  use_qalora: '0.16.0',
  qalora_group_size: '0.16.0',
  target_parameters: '0.17.0',
  alora_invocation_tokens: '0.18.0',
  arrow_config: '0.18.0',
  ensure_weight_tying: '0.18.0',
  lora_ga_config: '0.19.0',
  use_bdlora: '0.19.0',
  velora_config: '0.20.0',
  monteclora_config: '0.20.0',
};

/** `AdaLoraConfig`'s own keys (all present in 0.10.0). */
const ADALORA_KEYS: Record<string, PeftRelease> = {
  target_r: '0.10.0',
  init_r: '0.10.0',
  tinit: '0.10.0',
  tfinal: '0.10.0',
  deltaT: '0.10.0',
  beta1: '0.10.0',
  beta2: '0.10.0',
  orth_reg_weight: '0.10.0',
  total_step: '0.10.0',
};

/** The key table of one `peft_type` (LORA, ADALORA). */
export const PEFT_KEYS: Readonly<Record<string, Readonly<Record<string, PeftRelease>>>> = {
  LORA: { ...BASE_KEYS, ...LORA_KEYS },
  ADALORA: { ...BASE_KEYS, ...LORA_KEYS, ...ADALORA_KEYS },
};

const order = (v: string) => PEFT_RELEASES.indexOf(v as PeftRelease);

/** The later of two releases. */
export function laterRelease(a: PeftRelease, b: PeftRelease): PeftRelease {
  return order(a) >= order(b) ? a : b;
}

/**
 * The keys release `version` knows for `peftType`.
 * @example keysKnownBy('LORA', '0.10.0').has('lora_bias') // false
 */
export function keysKnownBy(peftType: string, version: PeftRelease): Set<string> {
  const table = PEFT_KEYS[peftType] ?? {};
  return new Set(
    Object.entries(table)
      .filter(([, since]) => order(since) <= order(version))
      .map(([k]) => k),
  );
}

/** What {@link savedAdapterConfig} wrote. */
export interface SavedAdapterConfig {
  /** `adapter_config.json` text (Python `json.dumps(indent=2, sort_keys=True)`). */
  text: string;
  /** The keys written. */
  keys: string[];
  /** Oldest PEFT release that reads every key of the file. */
  needs: PeftRelease;
  /** Keys newer than {@link OLDEST_PEFT}, written because their values are not the defaults. */
  newerKeys: { key: string; since: PeftRelease }[];
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * The adapter_config.json lowrank writes for `config` (already prepared for saving): PEFT's `asdict`
 * minus the keys an older release would reject while they hold their defaults, minus keys no release
 * has, and `peft_version` only when the file needs 0.18.0+.
 *
 * @example
 * const saved = savedAdapterConfig(new LoraConfig({ r: 8, targetModules: ['q_proj'] }));
 * saved.needs; // '0.10.0'
 */
export function savedAdapterConfig(config: PeftConfig): SavedAdapterConfig {
  const table = PEFT_KEYS[config.peftType];
  const full = config.toDict();
  const defaults = new Map(config.fieldSpecs.map((f) => [f.snake, f.default]));
  const out: Record<string, PyJson> = {};
  const newerKeys: SavedAdapterConfig['newerKeys'] = [];
  let needs: PeftRelease = OLDEST_PEFT;
  for (const [key, value] of Object.entries(full)) {
    if (key === 'peft_version') continue; // decided below, from what the file needs
    const since = table?.[key];
    const isDefault = sameJson(value, defaults.get(key));
    if (since === undefined) {
      // a key of a tuner without a table is kept; a key no PEFT release has is dropped at its default
      if (table === undefined || !isDefault) out[key] = value;
      continue;
    }
    if (since !== OLDEST_PEFT && isDefault) continue;
    out[key] = value;
    if (since !== OLDEST_PEFT) {
      newerKeys.push({ key, since });
      needs = laterRelease(needs, since);
    }
  }
  if (table && order(needs) >= order(table.peft_version!)) out.peft_version = needs;
  return { text: pyJsonDumps(out), keys: Object.keys(out).sort(), needs, newerKeys };
}

/**
 * One sentence for the user when a saved file needs a newer PEFT than {@link OLDEST_PEFT}, else null.
 * @example describeNeeds(saved) // 'needs PEFT ≥ 0.14.0 (lora_bias since 0.14.0); older releases reject it'
 */
export function describeNeeds(saved: SavedAdapterConfig): string | null {
  if (saved.newerKeys.length === 0) return null;
  const keys = saved.newerKeys.map((k) => `${k.key} since ${k.since}`).join(', ');
  return `needs PEFT ≥ ${saved.needs} (${keys}); older releases cannot load it`;
}
