/** serve/: an OpenAI-compatible server over one base model and many PEFT adapters (issue 16). */
export { createServer, type ServeOptions, type LowrankServer } from './server.js';
export { AdapterStore, BASE_MODEL_NAME, type AdapterHandle, type AdapterStoreOptions } from './adapters.js';
export {
  Engine,
  type GenerationJob,
  type ChoiceResult,
  type Sampling,
  type EngineOptions,
} from './engine.js';
export { ApiError } from './errors.js';
export { Metrics } from './metrics.js';
export { TextAssembler, tokenLogprobs } from './text.js';
export { readChatTemplate, renderChat, type ChatTemplate } from './chat.js';
