/** models/: BERT (and RoBERTa), GPT-2 and Llama with Hugging Face module paths, loading and generation. */
export * from './base.js';
export * from './config.js';
export * from './bert.js';
export * from './bert_classification.js';
export * from './gpt2.js';
export * from './llama.js';
export { applyRope, ropeTables } from './rope.js';
export { loadWeights, type WeightLoadReport, type LoadWeightsOptions } from './weights.js';
export { modelFromConfig, modelTypeOf, taskOf, type FromConfigOptions } from './from_config.js';
export { loadModel, loadModelWithReport, saveModel, type LoadModelOptions, type LoadReport } from './load.js';
export { generate, sampleToken, argmax, type GenerateOptions } from './generate.js';
export {
  prefillStep,
  raggedDecodeStep,
  cloneKVCache,
  disposeKVCache,
  cacheLength,
  type ForwardFn,
} from './ragged_cache.js';
