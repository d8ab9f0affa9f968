/** models/: BERT/RoBERTa, GPT-2, Llama, Qwen2, Mistral, Gemma, Gemma 2, Phi-3 and DeBERTa-v2 with Hugging Face module paths, loading and generation. */
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
export { generateBatch, type BatchRequest, type BatchGenerateOptions } from './generate_batch.js';
export {
  openNativeDecoder,
  nativeDecodeSupport,
  type NativeDecoder,
  type NativeDecodeOptions,
} from './native_decode.js';
export * from './rope_decoder.js';
export * from './qwen2.js';
export * from './mistral.js';
export * from './gemma.js';
export * from './phi3.js';
export * from './deberta_v2.js';
export {
  prefillStep,
  raggedDecodeStep,
  cloneKVCache,
  disposeKVCache,
  cacheLength,
  type ForwardFn,
} from './ragged_cache.js';
