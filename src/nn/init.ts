/**
 * Seeded parameter initialisers (PyTorch's defaults) and the process-wide generator that
 * `manualSeed` resets, like `torch.manual_seed`: one seed fixes init and dropout (DESIGN.md §4).
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { Rng } from '../util/rng.js';

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

/** U(lo, hi) of the given shape. */
export function uniform(shape: number[], lo: number, hi: number, rng = globalRng): Tensor {
  return tf.tensor(rng.uniformArray(sized(shape), lo, hi), shape, 'float32');
}

/** N(mean, std²) of the given shape. */
export function normal(shape: number[], mean = 0, std = 1, rng = globalRng): Tensor {
  return tf.tensor(rng.normalArray(sized(shape), mean, std), shape, 'float32');
}

/**
 * `kaiming_uniform_(w, a=√5)` on a [out, in] weight = U(−1/√in, 1/√in): PyTorch's `nn.Linear` default
 * and LoRA's `lora_A` init (PEFT-SPEC §6).
 */
export function kaimingUniformLinear(shape: [number, number], fanIn = shape[1], rng = globalRng): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(shape, -bound, bound, rng);
}
