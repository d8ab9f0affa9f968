/**
 * The config as an adapter folder records it (PEFT config.py `save_pretrained`), shared by
 * `PeftModel.savePretrained` and HyperLoRA's `materialize` so both write the same thing:
 * `inference_mode: true`, the base model's name or path, `auto_mapping` only without a task type, and
 * a LoftQ adapter recorded as `init_lora_weights: true` (PEFT's guidance for LoftQ: once A, B and the
 * base are set, a reload must not run LoftQ again — PEFT 0.20 would, and refuses without
 * bitsandbytes). The key set and `peft_version` are chosen by `savedAdapterConfig` (peft_keys.ts).
 */
import type { Module } from '../../nn/module.js';
import { PreTrainedModel } from '../../models/base.js';
import type { PeftConfig } from './config.js';
import { describeNeeds, savedAdapterConfig, type SavedAdapterConfig } from './peft_keys.js';
import { tunerWarn } from './warnings.js';

/**
 * A copy of `config` as it is saved for `model` (the unwrapped base model).
 * @example const onDisk = configForSave(peft.peftConfig.get('default')!, peft.getBaseModel());
 */
export function configForSave(config: PeftConfig, model: Module): PeftConfig {
  const pre = model instanceof PreTrainedModel ? model : null;
  const nameOrPath = (pre?.config as Record<string, unknown> | undefined)?.['_name_or_path'];
  const overrides: Record<string, unknown> = {
    inferenceMode: true,
    peftVersion: null, // savedAdapterConfig writes it when the file needs a release that knows the key
    baseModelNameOrPath:
      config.baseModelNameOrPath ?? (typeof nameOrPath === 'string' && nameOrPath ? nameOrPath : null),
  };
  if ((config as { initLoraWeights?: unknown }).initLoraWeights === 'loftq') {
    overrides.initLoraWeights = true;
    overrides.loftqConfig = {};
  }
  if (config.taskType === null) {
    const lib = pre?.modelType.replace(/-/g, '_');
    overrides.autoMapping = pre
      ? { base_model_class: pre.architecture, parent_library: `transformers.models.${lib}.modeling_${lib}` }
      : { base_model_class: model.constructor.name, parent_library: 'lowrank' };
  }
  return config.clone(overrides);
}

/**
 * The adapter_config.json text for `config` saved with `model`; warns (naming the keys) when the file
 * needs a PEFT release newer than 0.10.0.
 * @example await writeAdapterFolder(dir, adapterConfigText(cfg, model, dir).text, tensors);
 */
export function adapterConfigText(config: PeftConfig, model: Module, where: string): SavedAdapterConfig {
  const saved = savedAdapterConfig(configForSave(config, model));
  const needs = describeNeeds(saved);
  if (needs) tunerWarn(`${where}/adapter_config.json ${needs}`);
  return saved;
}
