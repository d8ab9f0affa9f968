/** io/: files on disk (safetensors, Hugging Face folders, tokenizers, llama2.c). Depends on tensor only. */
export * from './source.js';
export * from './dtypes.js';
export {
  MAX_HEADER_SIZE,
  compareUtf8,
  parseHeader,
  readHeaderLength,
  serializeHeader,
  writerOrder,
  type PreparedTensor,
} from './safetensors_header.js';
export * from './safetensors.js';
export * from './hf_folder.js';
export * from './tokenizer.js';
export * from './llama2c.js';
export * from './hf_stream.js';
