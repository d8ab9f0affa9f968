/**
 * The long leak check of issue 2: many training steps of a tiny BERT classifier on the current
 * backend, recording tensor count and RSS every `every` steps (the unit test runs 40 steps).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { tf } from '../src/tensor/tf.js';
import { AdamW } from '../src/training/optim.js';
import { buildEncoder, randomBatch, trainStep } from './encoder.js';

/** A full GC before each sample, so RSS shows retained memory rather than garbage not yet collected. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

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
  const samples: { step: number; tensors: number; rssMb: number; heapMb: number; arrayBuffersMb: number }[] =
    [];
  const gc = collector();
  for (let i = 1; i <= steps; i++) {
    trainStep(model, opt, batch, vars);
    if (i % every !== 0) continue;
    gc();
    const m = process.memoryUsage();
    const [rssMb, heapMb, arrayBuffersMb] = [m.rss, m.heapUsed, m.arrayBuffers].map((b) => b / 2 ** 20) as [
      number,
      number,
      number,
    ];
    samples.push({ step: i, tensors: tf.memory().numTensors, rssMb, heapMb, arrayBuffersMb });
  }
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  const mb = (k: 'rssMb' | 'heapMb' | 'arrayBuffersMb') =>
    `${first[k].toFixed(0)} → ${last[k].toFixed(0)} MB`;
  const what = `RSS ${mb('rssMb')}, JS heap ${mb('heapMb')}, ArrayBuffers ${mb('arrayBuffersMb')}`;
  console.log(
    `\n## leak run: ${steps} steps (sampled after a full GC): tensors ${first.tensors} → ${last.tensors}, ${what}`,
  );
  return { steps, samples };
}
