/**
 * The long leak check of issue 2: many training steps of a tiny BERT classifier on the current
 * backend, recording tensor count and RSS every `every` steps (the unit test runs 40 steps).
 */
import { tf } from '../src/tensor/tf.js';
import { AdamW } from '../src/training/optim.js';
import { buildEncoder, randomBatch, trainStep } from './encoder.js';

const TINY = { layers: 2, hidden: 32, heads: 2, ffn: 64, seq: 16, batch: 4, vocab: 100 };

/**
 * Runs `steps` steps; returns tensor counts and RSS (MB) sampled along the way.
 * @example leakRun(1000) // { tensors: [...], rssMb: [...] }
 */
export function leakRun(steps: number, every = Math.max(1, Math.floor(steps / 10))) {
  const model = buildEncoder(TINY);
  const named = model.trainableParameters();
  const opt = new AdamW(named, { lr: 1e-3 });
  const batch = randomBatch(TINY);
  const vars = named.map(([, v]) => v);
  const samples: { step: number; tensors: number; rssMb: number }[] = [];
  for (let i = 1; i <= steps; i++) {
    trainStep(model, opt, batch, vars);
    if (i % every === 0)
      samples.push({ step: i, tensors: tf.memory().numTensors, rssMb: process.memoryUsage().rss / 2 ** 20 });
  }
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  console.log(
    `\n## leak run: ${steps} steps, tensors ${first.tensors} → ${last.tensors}, RSS ${first.rssMb.toFixed(0)} → ${last.rssMb.toFixed(0)} MB`,
  );
  return { steps, samples };
}
