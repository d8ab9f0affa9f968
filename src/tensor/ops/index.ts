export * from './linear.js';
export * from './norm.js';
export * from './activations.js';
export * from './loss.js';
export * from './attention.js';
export * from './lora.js';
export * from './adamw.js';
export * from './dropout.js';
