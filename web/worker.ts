/**
 * The training Web Worker: owns the TensorFlow.js backend, the base model and its adapters, and
 * answers the page's requests (web/protocol.ts). Requests run one at a time, except `pause`,
 * `resume` and `stop`, which are answered at once while a training run awaits between its steps.
 */
/// <reference lib="webworker" />
import { configureWasmPaths, initBackend } from '../src/tensor/backend_browser.js';
import { ConfigError } from '../src/errors.js';
import { tf } from '../src/tensor/tf.js';
import { setWarningHandler } from '../src/tuners/index.js';
import { TrainControl } from './train_control.js';
import { Session } from './engine/session.js';
import {
  serializeError,
  type FromWorker,
  type Replies,
  type Request,
  type WasmThreading,
  type WorkerEvent,
} from './protocol.js';

declare const self: DedicatedWorkerGlobalScope;

const control = new TrainControl();
const emit = (e: WorkerEvent): void => self.postMessage(e satisfies FromWorker);
const session = new Session(emit);
let queue: Promise<unknown> = Promise.resolve();

// Tuner warnings (PEFT's warnings.warn: ignored fields, unknown adapter_config keys) go to the page.
setWarningHandler((message) => emit({ type: 'log', message: `warning: ${message}` }));

control.onChange((state) =>
  emit({ type: 'trainState', state, adapterName: session.trainingAdapter ?? '', step: session.trainingStep }),
);

/** How the wasm backend runs (tfjs-backend-wasm's binary choice and thread pool size). */
async function wasmThreading(threadsAllowed: boolean): Promise<WasmThreading> {
  const isolated = self.crossOriginIsolated;
  if (tf.getBackend() !== 'wasm') return { isolated, threadedBinary: false, threads: 0 };
  const env = tf.env();
  // tfjs-backend-wasm loads the threaded binary exactly when both flags hold (backend_wasm.ts `init`).
  const threadedBinary =
    threadsAllowed &&
    (await env.getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true &&
    (await env.getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const b = tf.backend() as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  return { isolated, threadedBinary, threads: b.wasm?.tfjs?.getThreadsCount?.() ?? 1 };
}

async function init(req: Extract<Request, { type: 'init' }>): Promise<Replies['init']> {
  configureWasmPaths(req.wasmPaths);
  // tfjs picks the threaded wasm binary whenever the page is cross-origin isolated; this flag opts out.
  if (!req.wasmThreads) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const report = await initBackend(req.backend);
  return { ...report, wasm: await wasmThreading(req.wasmThreads) };
}

async function handle(req: Request): Promise<unknown> {
  switch (req.type) {
    case 'init':
      return init(req);
    case 'loadModel':
      return session.loadModel(req.source);
    case 'train':
      return session.train(req.spec, control);
    case 'probe':
      return session.probe(req.prompt, req.maxNewTokens);
    case 'setAdapter':
      return session.setAdapter(req.name);
    case 'deleteAdapter':
      return session.deleteAdapter(req.name);
    case 'exportAdapter':
      return session.exportAdapter(req.name);
    case 'loadAdapter':
      return session.loadAdapter(req.name, req.files);
    case 'pause':
      return { state: control.pause() };
    case 'resume':
      return { state: control.resume() };
    case 'stop':
      return { state: control.stop() };
  }
}

function reply(id: number, run: () => Promise<unknown>): Promise<void> {
  return run().then(
    (result) => {
      const transfer =
        result && typeof result === 'object' && 'safetensors' in result
          ? [(result as { safetensors: Uint8Array }).safetensors.buffer as ArrayBuffer]
          : [];
      self.postMessage({ type: 'done', id, result } satisfies FromWorker, transfer);
    },
    (err: unknown) =>
      self.postMessage({ type: 'error', id, error: serializeError(err) } satisfies FromWorker),
  );
}

self.onmessage = (ev: MessageEvent<Request>) => {
  const req = ev.data;
  if (req.type === 'pause' || req.type === 'resume' || req.type === 'stop') {
    void reply(req.id, () => handle(req));
    return;
  }
  if (req.type === 'probe' && control.state === 'paused') {
    // The run waits at a step boundary: the adapter is consistent and can be tried out meanwhile.
    void reply(req.id, () => handle(req));
    return;
  }
  if (control.active()) {
    const busy = new ConfigError(
      req.type,
      'cannot run while training is active',
      req.type,
      'pause and stop the run first',
    );
    void reply(req.id, () => Promise.reject(busy));
    return;
  }
  queue = queue.then(() => reply(req.id, () => handle(req)));
};
