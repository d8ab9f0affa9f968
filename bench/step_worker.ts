/**
 * One benchmark cell in its own process (so peak RSS and the backend are its own): trains the
 * reference encoder on a backend with a variant and prints JSON {ms, peakRssMb, trainable, loss,
 * losses} (`losses`: every step's loss from the seeded start, warm-up included, for parity checks).
 *   node --import tsx bench/step_worker.ts <native|wasm|cpu> <full|lora|adalora> <steps> [layers]
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { REFERENCE, randomBatch, type Batch } from './encoder.js';
import { buildVariant, variantStep } from './variants.js';

const [backend = 'native', variant = 'full', stepsArg = '3', layersArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const shape = { ...REFERENCE, layers: Number(layersArg ?? REFERENCE.layers) };

await initBackend(backend);
const model = buildVariant(variant, shape);
const batch: Batch = randomBatch(shape);

const losses = [variantStep(model, batch, 1)]; // warm-up (kernel setup, pool, optimizer slots)
const times: number[] = [];
let loss = losses[0]!;
for (let i = 2; i <= steps + 1; i++) {
  const t0 = performance.now();
  loss = variantStep(model, batch, i);
  times.push(performance.now() - t0);
  losses.push(loss);
}
times.sort((a, b) => a - b);
const trainable = model.named.reduce((acc, [, v]) => acc + v.size, 0);
console.log(
  JSON.stringify({
    backend,
    variant,
    ms: times.length > 0 ? times[Math.floor(times.length / 2)] : null,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    trainable,
    loss,
    losses,
    tensors: tf.memory().numTensors,
  }),
);
