export * from './codes.js';
export * from './blockwise.js';
export * from './op.js';
