export * from './tf.js';
export * from './memory.js';
export * from './ops/index.js';
export * from './read.js';
