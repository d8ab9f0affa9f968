/**
 * Reading Hugging Face `config.json` fields with validation: every model reads its dimensions once,
 * through these helpers, so a bad or missing field fails at construction with a message naming it.
 */
import { ConfigError, NotSupportedError } from '../errors.js';
import type { HFConfig } from './base.js';

/**
 * Typed access to one config object. Missing fields take the fallback (Hugging Face's default) or
 * throw a `ConfigError` naming the field when there is no default.
 *
 * @example
 * const r = new ConfigReader(config, 'LlamaConfig');
 * const hidden = r.int('hidden_size'); // throws if absent or not a positive integer
 * const theta = r.num('rope_theta', 10000);
 */
export class ConfigReader {
  constructor(
    readonly config: HFConfig,
    readonly where: string,
  ) {}

  private raw(key: string): unknown {
    const v = this.config[key];
    return v === null ? undefined : v;
  }

  /** A positive integer (dimensions, counts). */
  int(key: string, fallback?: number): number {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ConfigError(
        `${this.where}.${key}`,
        'must be a positive integer',
        v,
        `set "${key}" in config.json`,
      );
    }
    return v;
  }

  /** A finite number. */
  num(key: string, fallback?: number): number {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ConfigError(
        `${this.where}.${key}`,
        'must be a finite number',
        v,
        `set "${key}" in config.json`,
      );
    }
    return v;
  }

  /** A probability in [0, 1) (dropout rates). */
  prob(key: string, fallback: number): number {
    const v = this.num(key, fallback);
    if (v < 0 || v >= 1) {
      throw new ConfigError(`${this.where}.${key}`, 'must be in [0, 1)', v, 'use a dropout rate such as 0.1');
    }
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'string') {
      throw new ConfigError(`${this.where}.${key}`, 'must be a string', v, `set "${key}" in config.json`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'boolean') {
      throw new ConfigError(
        `${this.where}.${key}`,
        'must be true or false',
        v,
        `set "${key}" in config.json`,
      );
    }
    return v;
  }

  /** A token id that may be absent (`pad_token_id`); an id list takes its first entry as HF does for EOS. */
  optionalTokenId(key: string): number | undefined {
    let v = this.raw(key);
    if (Array.isArray(v)) v = v[0];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new ConfigError(
        `${this.where}.${key}`,
        'must be a non-negative integer or null',
        v,
        'fix config.json',
      );
    }
    return v;
  }

  /** Fails for a field this implementation cannot honour, instead of silently ignoring it. */
  rejectIfSet(key: string, fix: string): void {
    if (this.raw(key) !== undefined) {
      throw new NotSupportedError(
        `${this.where}.${key}`,
        `"${key}" = ${JSON.stringify(this.config[key])}`,
        fix,
      );
    }
  }
}

/**
 * Number of classification labels as Hugging Face derives it: `num_labels` if present, else the size of
 * `id2label`, else 2.
 * @example numLabelsOf({ id2label: { 0: 'neg', 1: 'neu', 2: 'pos' } }) // 3
 */
export function numLabelsOf(config: HFConfig): number {
  if (config.num_labels !== undefined) return new ConfigReader(config, 'config').int('num_labels');
  const id2label = config.id2label;
  if (id2label && typeof id2label === 'object') return Object.keys(id2label).length;
  return 2;
}

/**
 * A copy of `config` with `numLabels` written the way `config.json` stores it (`id2label`/`label2id`),
 * keeping existing label names when the count matches.
 * @example withNumLabels(cfg, 3).id2label // { '0': 'LABEL_0', '1': 'LABEL_1', '2': 'LABEL_2' }
 */
export function withNumLabels(config: HFConfig, numLabels: number): HFConfig {
  if (!Number.isInteger(numLabels) || numLabels <= 0) {
    throw new ConfigError(
      'numLabels',
      'must be a positive integer',
      numLabels,
      'use 1 for regression, ≥ 2 for classes',
    );
  }
  const out: HFConfig = { ...config };
  delete out.num_labels;
  if (config.id2label && numLabelsOf(config) === numLabels) return out;
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  for (let i = 0; i < numLabels; i++) {
    id2label[String(i)] = `LABEL_${i}`;
    label2id[`LABEL_${i}`] = i;
  }
  out.id2label = id2label;
  out.label2id = label2id;
  return out;
}

export type ProblemType = 'regression' | 'single_label_classification';

/**
 * `problem_type` as Hugging Face infers it for sequence classification: regression for one label,
 * single-label classification otherwise. Multi-label classification is not supported yet.
 */
export function problemTypeOf(config: HFConfig, numLabels: number): ProblemType {
  const given = config.problem_type;
  if (given === undefined || given === null)
    return numLabels === 1 ? 'regression' : 'single_label_classification';
  if (given === 'regression' || given === 'single_label_classification') return given;
  throw new NotSupportedError(
    'config.problem_type',
    `problem_type ${JSON.stringify(given)}`,
    'use regression or single_label_classification',
  );
}
