/**
 * HyperLoRA: one hypernetwork generating every targeted layer's LoRA factors from a condition
 * (docs/hyperlora.md). Materialised adapters are plain PEFT LoRA folders.
 *
 * @example
 * const hyper = new HyperLoraModel(model, new HyperLoraConfig({ targetModules: ['q_proj', 'v_proj'], numConditions: 3 }));
 */
export * from './config.js';
export * from './hypernet.js';
export * from './layer.js';
export * from './model.js';
export * from './to_lora.js';
