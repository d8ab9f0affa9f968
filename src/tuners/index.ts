/**
 * Public API of the tuners. Importing this module registers every tuner (LoRA, DoRA variant, …)
 * with the registries (`registry.ts`, `lora/variant.ts`).
 */
export * from './base/config.js';
export * from './base/py_json.js';
export * from './base/warnings.js';
export * from './base/layer.js';
export * from './base/matching.js';
export * from './base/modules_to_save.js';
export * from './base/state_dict.js';
export * from './base/tuner.js';
export * from './base/adapter_files.js';
export * from './base/quantized.js';
export * from './registry.js';
export * from './peft_model.js';
export * from './lora/index.js';
export * from './lora/dora.js';
export * from './adalora/index.js';
export * from './hyperlora/index.js';
