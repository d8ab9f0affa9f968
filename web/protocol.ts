/**
 * Messages between the page (main thread) and the training Web Worker. Every request carries an
 * `id`; the worker answers each with exactly one `done` or `error` carrying the same id, and sends
 * unsolicited `progress` / `ranks` / `trainState` events while training. Bytes travel as transferable
 * `Uint8Array`s, errors as plain objects (name + message), so typed library errors reach the page.
 */

export type TaskType = 'CAUSAL_LM' | 'SEQ_CLS';
export type Method = 'lora' | 'adalora' | 'dora' | 'qlora';
export type BackendName = 'auto' | 'webgpu' | 'webgl' | 'wasm' | 'cpu';

/** One file the user picked, with its path inside the picked folder (`my-bert/config.json`). */
export interface PickedFile {
  path: string;
  bytes: Uint8Array;
}

export type ModelSource =
  | { kind: 'demo'; arch: 'llama' | 'bert'; seed: number }
  | { kind: 'folder'; files: PickedFile[] }
  | { kind: 'llama2c'; checkpoint: PickedFile; tokenizer: PickedFile };

export interface DataSpec {
  format: 'text' | 'tsv' | 'csv' | 'jsonl';
  content: string;
  task: TaskType;
  /** Column (TSV/CSV header name or JSONL key) holding the text. */
  textColumn: string;
  /** Column holding the label (classification only). */
  labelColumn: string;
}

export interface MethodSpec {
  method: Method;
  /** LoRA/DoRA/QLoRA rank; AdaLoRA's average target rank. */
  r: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
  /** AdaLoRA: initial rank per matrix, schedule (tinit, tfinal, deltaT), EMA betas, orth. reg. */
  initR: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  beta1: number;
  beta2: number;
  orthRegWeight: number;
}

export interface TrainSpec {
  adapterName: string;
  data: DataSpec;
  method: MethodSpec;
  steps: number;
  learningRate: number;
  batchSize: number;
  /** Tokens per example (text is packed into blocks of this length; rows are cut/padded to it). */
  seqLen: number;
  seed: number;
}

/** What the page shows about the loaded base model. */
export interface ModelInfo {
  name: string;
  modelType: string;
  taskType: TaskType;
  numParameters: number;
  numLayers: number;
  /** Linear module names an adapter can target (e.g. `q_proj`, `v_proj`). */
  linearModules: string[];
  vocabSize: number;
  numLabels: number;
}

/** AdaLoRA's current ranks: `ranks[layer][module]`, with the total budget at that step. */
export interface RankSnapshot {
  step: number;
  layers: number[];
  modules: string[];
  ranks: number[][];
  budget: number;
  initR: number;
}

export interface AdapterFiles {
  name: string;
  /** `adapter_config.json` text. */
  config: string;
  /** `adapter_model.safetensors` bytes. */
  safetensors: Uint8Array;
}

/** Outputs for one probe input, so the page and Node can compare numbers. */
export interface ProbeResult {
  /** CAUSAL_LM: generated continuation; SEQ_CLS: the predicted label. */
  text: string;
  /** Input ids fed to the model. */
  inputIds: number[];
  /** CAUSAL_LM: next-token logits after the prompt; SEQ_CLS: class logits. */
  logits: number[];
  /** SEQ_CLS: softmax of the logits. */
  probs: number[];
  /** SEQ_CLS: the class names, in the order of `probs` (the training data's labels when it had names). */
  labels?: string[];
  adapter: string | null;
}

export type Request =
  | {
      id: number;
      type: 'init';
      backend: BackendName;
      wasmPaths: Record<string, string>;
      /** false: never start tfjs's threaded wasm (the page's fallback after threads failed). */
      wasmThreads: boolean;
    }
  | { id: number; type: 'loadModel'; source: ModelSource }
  | { id: number; type: 'train'; spec: TrainSpec }
  | { id: number; type: 'pause' }
  | { id: number; type: 'resume' }
  | { id: number; type: 'stop' }
  | { id: number; type: 'probe'; prompt: string; maxNewTokens: number }
  | { id: number; type: 'setAdapter'; name: string | null }
  | { id: number; type: 'deleteAdapter'; name: string }
  | { id: number; type: 'exportAdapter'; name: string }
  | { id: number; type: 'loadAdapter'; name: string; files: PickedFile[] };

export type RequestType = Request['type'];

export interface SerializedError {
  name: string;
  message: string;
}

/**
 * A page run's state. `pausing`: a pause was asked for and the step in flight is finishing;
 * `paused`: the run waits between two steps (no step runs until `resume` or `stop`).
 */
export type TrainState = 'idle' | 'running' | 'pausing' | 'paused' | 'stopping' | 'stopped' | 'done';

export interface ProgressEvent {
  type: 'progress';
  step: number;
  totalSteps: number;
  /** The task loss (AdaLoRA's orthogonal regulariser is `regLoss`; their sum is what was minimised). */
  loss: number;
  /** AdaLoRA: the weighted orthogonal regulariser at this step. */
  regLoss?: number;
  learningRate: number;
  elapsedMs: number;
  etaMs: number;
  /** AdaLoRA's budget (total rank) at this step. */
  budget?: number;
}

export type WorkerEvent =
  | ProgressEvent
  | ({ type: 'ranks' } & RankSnapshot)
  | { type: 'trainState'; state: TrainState; adapterName: string; step: number }
  | { type: 'adapters'; names: string[]; active: string | null }
  | { type: 'log'; message: string }
  | { type: 'model'; info: ModelInfo };

/** How the wasm backend runs: threads need a cross-origin isolated page (COOP/COEP headers). */
export interface WasmThreading {
  /** The worker is cross-origin isolated (SharedArrayBuffer is available). */
  isolated: boolean;
  /** tfjs runs its threaded wasm binary (SharedArrayBuffer memory, a pool of thread workers). */
  threadedBinary: boolean;
  /** Threads tfjs's thread pool computes with (tfjs's choice for this machine); 0 when not on wasm. */
  threads: number;
}

/** Replies by request type. */
export interface Replies {
  init: { backend: string; tried: { name: string; ok: boolean; reason?: string }[]; wasm: WasmThreading };
  loadModel: ModelInfo;
  train: { adapterName: string; steps: number; finalLoss: number; stopped: boolean };
  pause: { state: TrainState };
  resume: { state: TrainState };
  stop: { state: TrainState };
  probe: ProbeResult;
  setAdapter: { active: string | null };
  deleteAdapter: { names: string[] };
  exportAdapter: AdapterFiles;
  loadAdapter: { name: string; method: string };
}

export type Reply =
  { type: 'done'; id: number; result: unknown } | { type: 'error'; id: number; error: SerializedError };

export type FromWorker = Reply | WorkerEvent;

/** Turns any thrown value into a plain object that survives `postMessage`. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}
