export * from './module.js';
export * from './layers.js';
export * from './init.js';
export * from './linear_like.js';
export * from './module_dict.js';
export * from './checkpoint.js';
