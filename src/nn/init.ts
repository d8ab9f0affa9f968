/**
 * Seeded parameter initialisers (PyTorch's defaults) and the process-wide generator that
 * `manualSeed` resets, like `torch.manual_seed`: one seed fixes init and dropout (docs/design.md "Errors,
 * memory, determinism").
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { Rng } from '../util/rng.js';
import { internal } from '../errors.js';

let globalRng = new Rng(0);

/** Reseeds the generator used for parameter init and dropout masks. */
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}

/** The generator behind init and dropout (the Trainer saves and restores its state). */
export function defaultRng(): Rng {
  return globalRng;
}

function sized(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * While {@link deferInit} builds a model: how to draw each placeholder's values, by tfjs data id (a
 * `tf.variable` made from a tensor shares its data id, so the entry follows the tensor into the model).
 */
let deferred: Map<object, () => Tensor> | null = null;

/** A generator standing where `rng` stands now (the values it draws are the ones `rng` would draw). */
function snapshot(rng: Rng): Rng {
  const copy = new Rng(0);
  copy.setState(rng.state());
  return copy;
}

/**
 * Zeros shared by every placeholder of one {@link deferInit}: each placeholder is a view on the front
 * of this buffer (grown when a larger one is needed), so a whole model's placeholders take at most
 * about two of its largest tensor, whatever the allocator does with fresh memory.
 */
let sharedZeros = new Float32Array(0);

/**
 * A zero placeholder of `shape` whose real values (`draw(rng)`) are recorded for later; `rng` is moved
 * past the draws the values would take, so the stream stays exactly as an eager init leaves it.
 */
function placeholder(shape: number[], rng: Rng, skip: () => void, draw: (r: Rng) => Float32Array): Tensor {
  const at = snapshot(rng);
  skip();
  const n = sized(shape);
  if (sharedZeros.length < n) sharedZeros = new Float32Array(n);
  const t = tf.tensor(sharedZeros.subarray(0, n), shape, 'float32'); // read-only: assign replaces, never writes
  deferred!.set(t.dataId, () => tf.tensor(draw(at), shape, 'float32'));
  return t;
}

/** U(lo, hi) of the given shape. */
export function uniform(shape: number[], lo: number, hi: number, rng = globalRng): Tensor {
  const n = sized(shape);
  if (deferred) {
    const skip = () => {
      for (let i = 0; i < n; i++) rng.nextUint32(); // one draw per uniform (Rng.uniform)
    };
    return placeholder(shape, rng, skip, (r) => r.uniformArray(n, lo, hi));
  }
  return tf.tensor(rng.uniformArray(n, lo, hi), shape, 'float32');
}

/** N(mean, std²) of the given shape. */
export function normal(shape: number[], mean = 0, std = 1, rng = globalRng): Tensor {
  const n = sized(shape);
  if (deferred) {
    const skip = () => {
      // Rng.normal: redraw u while it is exactly 0, then one draw for v
      for (let i = 0; i < n; i++) {
        while (rng.nextUint32() === 0);
        rng.nextUint32();
      }
    };
    return placeholder(shape, rng, skip, (r) => r.normalArray(n, mean, std));
  }
  return tf.tensor(rng.normalArray(n, mean, std), shape, 'float32');
}

/** Placeholders left by {@link deferInit}: fill the ones nothing overwrote with their real init. */
export class PendingInit {
  constructor(private readonly draws: Map<object, () => Tensor>) {}

  /** True when `v` still holds a placeholder (its data was never assigned). */
  has(v: Variable): boolean {
    return this.draws.has(v.dataId);
  }

  /**
   * Gives `v` the values its initialiser would have drawn eagerly, if it still holds a placeholder.
   * Returns whether it did.
   */
  materialize(v: Variable): boolean {
    const draw = this.draws.get(v.dataId);
    if (!draw) return false;
    this.draws.delete(v.dataId);
    const t = draw();
    v.assign(t);
    t.dispose();
    return true;
  }
}

/**
 * Runs `build` (a model constructor) with deferred random init: every `uniform`/`normal` tensor is a
 * zero placeholder (views on one shared buffer), and the generator advances exactly as if the values had been drawn.
 * A loader then writes the checkpoint's tensors over the placeholders and calls
 * `pending.materialize(v)` for parameters the checkpoint lacks, which get the very values an eager
 * build gives them. So a model is never initialised in full only to be overwritten (PyTorch's
 * `init_empty_weights` / `low_cpu_mem_usage` loading follows the same idea).
 *
 * @example
 * const { value: model, pending } = deferInit(() => modelFromConfig(config));
 * for (const [, p] of model.namedParameters()) pending.materialize(p); // == an eager build
 */
export function deferInit<T>(build: () => T): { value: T; pending: PendingInit } {
  if (deferred) internal('deferInit: already deferring (nested deferInit is not supported)');
  const draws = new Map<object, () => Tensor>();
  deferred = draws;
  try {
    return { value: build(), pending: new PendingInit(draws) };
  } finally {
    deferred = null;
    sharedZeros = new Float32Array(0); // placeholders keep their views; the next deferInit starts afresh
  }
}

/**
 * `kaiming_uniform_(w, a=√5)` on a [out, in] weight = U(−1/√in, 1/√in): PyTorch's `nn.Linear` default
 * and LoRA's `lora_A` init (PEFT lora/layer.py `reset_lora_parameters`).
 */
export function kaimingUniformLinear(shape: [number, number], fanIn = shape[1], rng = globalRng): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(shape, -bound, bound, rng);
}

/** Transposes a row-major [rows, cols] array to [cols, rows]. */
function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/**
 * {@link kaimingUniformLinear} drawn for [out, in] and stored transposed as [in, out] (a GPT-2 Conv1D
 * weight, `fanInFanOut`): the same values as `kaimingUniformLinear(shape).transpose()`, deferrable.
 *
 * @example const w = kaimingUniformLinearTransposed([768, 2304]); // shape [2304, 768]
 */
export function kaimingUniformLinearTransposed(shape: [number, number], rng = globalRng): Tensor {
  const [out, inF] = shape;
  const bound = inF > 0 ? 1 / Math.sqrt(inF) : 0;
  const n = out * inF;
  const draw = (r: Rng) => transpose2d(r.uniformArray(n, -bound, bound), out, inF);
  if (deferred) {
    const skip = () => {
      for (let i = 0; i < n; i++) rng.nextUint32();
    };
    return placeholder([inF, out], rng, skip, draw);
  }
  return tf.tensor(draw(rng), [inF, out], 'float32');
}
