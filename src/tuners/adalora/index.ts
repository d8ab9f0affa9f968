/**
 * AdaLoRA (arXiv 2303.10512; PEFT tuners/adalora/): config, SVD layer, rank allocator, orthogonal
 * regulariser and tuner model. Importing this module registers the tuner as peftType "ADALORA", so
 * `getPeftModel(model, new AdaLoraConfig(...))` and `PeftModel.fromPretrained` find it.
 *
 * @example
 * import { AdaLoraConfig } from './tuners/adalora/index.js';
 * const peft = getPeftModel(model, new AdaLoraConfig({ initR: 12, targetR: 8, totalStep: 3000, targetModules: ['q_proj', 'v_proj'] }));
 */
import { registerTuner } from '../registry.js';
import { AdaLoraConfig } from './config.js';
import { AdaLoraModel } from './model.js';

registerTuner({ peftType: 'ADALORA', configClass: AdaLoraConfig, modelClass: AdaLoraModel });

export * from './config.js';
export * from './layer.js';
export * from './rank_allocator.js';
export * from './orth_reg.js';
export * from './allocation.js';
export * from './save_load.js';
export * from './model.js';
