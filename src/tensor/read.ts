/**
 * Reading tensor values back to JavaScript, the one place that decides how (docs/design.md "Backends").
 *
 * GPU backends (WebGPU, WebGL) keep tensors on the device: a synchronous read (`dataSync`,
 * `arraySync`) stalls the page, and on tfjs-webgpu 4.22 it goes through a canvas that can lose the
 * device ("A valid external Instance reference no longer exists"), after which every buffer creation
 * fails until reload. Training, allocation, evaluation and saving therefore read through
 * {@link readData} / {@link readScalar} (a Promise, the backend's own async download). The
 * synchronous {@link readDataSync} stays for APIs that must be synchronous (PEFT-shaped methods);
 * it refuses GPU backends with a typed error naming the asynchronous alternative.
 *
 * {@link forbidSyncReads} makes every synchronous read through the engine throw, so a test can prove a
 * whole training run never reaches one.
 */
import { tf, type Tensor } from './tf.js';
import { NotSupportedError } from '../errors.js';

/** Backends whose tensors live in this process's memory (a synchronous read is a copy). */
const CPU_MEMORY_BACKENDS = new Set(['cpu', 'native', 'wasm', 'tensorflow']);

/**
 * True when the active (or named) backend keeps tensors off the CPU, so reads must be asynchronous.
 * @example if (isGpuBackend()) console.log('reads are async here');
 */
export function isGpuBackend(name: string = tf.getBackend()): boolean {
  return !CPU_MEMORY_BACKENDS.has(name);
}

/**
 * The values of `t` (a fresh copy the caller may keep), read asynchronously. `t` is not disposed.
 * @example const values = await readData(logits); // Float32Array
 */
export async function readData(t: Tensor): Promise<Float32Array | Int32Array | Uint8Array> {
  return (await t.data()) as Float32Array | Int32Array | Uint8Array;
}

/**
 * The single value of a scalar (or the first value of `t`), read asynchronously. `t` is not disposed.
 * @example const loss = await readScalar(lossTensor);
 */
export async function readScalar(t: Tensor): Promise<number> {
  return (await t.data())[0] as number;
}

/**
 * Reads many tensors at once (downloads overlap on GPU backends). None is disposed.
 * @example const [a, b] = await readAll([x, y]);
 */
export async function readAll(ts: readonly Tensor[]): Promise<(Float32Array | Int32Array | Uint8Array)[]> {
  return Promise.all(ts.map(readData));
}

/**
 * A synchronous read for APIs that must stay synchronous, allowed only where tensors are in CPU
 * memory (cpu, native, wasm). On a GPU backend it throws NotSupportedError naming `where` and the
 * asynchronous alternative `asyncAlternative`.
 * @example const w = readDataSync(weight, 'Linear4bit.fromLinear', 'Linear4bit.fromLinearAsync');
 */
export function readDataSync(
  t: Tensor,
  where: string,
  asyncAlternative: string,
): Float32Array | Int32Array | Uint8Array {
  const backend = tf.getBackend();
  if (isGpuBackend(backend)) {
    throw new NotSupportedError(
      where,
      `a synchronous tensor read on the GPU backend "${backend}"`,
      `use ${asyncAlternative}`,
    );
  }
  return t.dataSync() as Float32Array | Int32Array | Uint8Array;
}

interface EngineWithReadSync {
  readSync(dataId: unknown): unknown;
}

/**
 * Makes every synchronous tensor read through the engine (`dataSync`, `arraySync`, `bufferSync`)
 * throw until the returned function is called: what a GPU backend needs, enforced on any backend.
 * Kernels reading their own inputs internally (the backend's `readSync`) are not affected.
 * @example const restore = forbidSyncReads(); try { await trainer.train(); } finally { restore(); }
 */
export function forbidSyncReads(): () => void {
  const engine = tf.engine() as unknown as EngineWithReadSync;
  const original = engine.readSync;
  engine.readSync = () => {
    throw new NotSupportedError(
      'forbidSyncReads',
      'a synchronous tensor read (dataSync/arraySync) on a path that may run on a GPU backend',
      'read with await readData(t) / readScalar(t) from src/tensor/read.ts',
    );
  };
  return () => {
    engine.readSync = original;
  };
}
