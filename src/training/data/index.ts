export * from './readers.js';
export * from './dataset.js';
export * from './loader.js';
export * from './tokenizer.js';
export { contentHash } from './hash.js';
