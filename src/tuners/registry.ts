/**
 * Tuner registry: `peftType` ('LORA', 'ADALORA', …) → config class and tuner model class, so
 * `PeftModel.fromPretrained` builds the right tuner from `adapter_config.json` without importing any
 * tuner (docs/design.md "Tuner registry"). Each tuner registers itself in its `index.ts`;
 * `tuners/index.ts` imports them all.
 *
 * @example
 * registerTuner({ peftType: 'ADALORA', configClass: AdaLoraConfig, modelClass: AdaLoraModel });
 */
import type { Module } from '../nn/module.js';
import { ConfigError } from '../errors.js';
import type { FieldSpec, PeftConfig } from './base/config.js';
import type { BaseTuner, TunerConfig } from './base/tuner.js';

export interface TunerEntry {
  peftType: string;
  configClass: (new (options: object) => PeftConfig) & { fields: readonly FieldSpec[] };
  modelClass: new (model: Module) => BaseTuner<TunerConfig>;
}

const tuners = new Map<string, TunerEntry>();

/** Registers (or replaces) the tuner for a peftType. */
export function registerTuner(entry: TunerEntry): void {
  tuners.set(entry.peftType, entry);
}

/** The tuner for a peftType, or a ConfigError listing the registered ones. */
export function getTuner(peftType: string): TunerEntry {
  const t = tuners.get(peftType);
  if (!t) {
    throw new ConfigError(
      'peftType',
      'no tuner is registered for this PEFT type',
      peftType,
      `supported: ${[...tuners.keys()].sort().join(', ') || 'none (import the library entry so tuners register)'}`,
    );
  }
  return t;
}

/** Registered peftTypes. */
export function registeredPeftTypes(): string[] {
  return [...tuners.keys()].sort();
}
