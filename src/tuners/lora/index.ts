/** LoRA: config, layers, model; registers itself as peftType "LORA". */
import { registerTuner } from '../registry.js';
import { LoraConfig } from './config.js';
import { LoraModel } from './model.js';

registerTuner({ peftType: 'LORA', configClass: LoraConfig, modelClass: LoraModel });

export * from './config.js';
export * from './layer.js';
export * from './embedding.js';
export * from './model.js';
export * from './variant.js';
export * from './weighted.js';
export * from './mixed_batch.js';
export { pissaInit, oloraInit } from './init.js';
