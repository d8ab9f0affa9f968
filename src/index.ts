/**
 * lowrank: parameter-efficient fine-tuning (AdaLoRA, LoRA, DoRA, QLoRA, HyperLoRA) in TypeScript.
 * The public API; CLI and web page are thin shells over it (docs/design.md "Public API").
 */
export * from './errors.js';
export { tf } from './tensor/tf.js';
export * from './nn/index.js';
export {
  Linear4bit,
  quantizeModel,
  quantizeModelAsync,
  onRequantize,
  type QuantizeModelOptions,
  type QuantizeModelReport,
} from './nn/linear4bit.js';
export { memoryByCategory, type MemoryByCategory } from './nn/memory_report.js';
export * from './nn/linear4bit_report.js';
export * from './models/index.js';
export { corpusIds, windowedLoss } from './models/windowed_loss.js';
export * from './tuners/index.js';
export * from './training/index.js';
export * from './io/index.js';
export {
  initBackend,
  backendInfo,
  setThreads,
  BACKENDS,
  LOWRANK_VERSION,
  type BackendName,
  type BackendReport,
  type BackendInfo,
} from './tensor/backend.js';
export {
  allocatorStats,
  assertNoLeak,
  disposeAll,
  releaseMemory,
  trimAllocator,
  type AllocatorStats,
} from './tensor/memory.js';
export { chunkedLossRows, setChunkedLoss } from './models/chunked_head.js';
export { chunkedLinearCrossEntropy } from './tensor/ops/chunked_ce.js';
export { processMemory, resetPeakRss, type ProcessMemory } from './util/process_memory.js';
export { readData, readScalar, readAll, readDataSync, isGpuBackend, forbidSyncReads } from './tensor/read.js';
export {
  createServer,
  AdapterStore,
  Engine,
  ApiError,
  BASE_MODEL_NAME,
  type ServeOptions,
  type LowrankServer,
} from './serve/index.js';
