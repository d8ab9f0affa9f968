/**
 * One benchmark cell in its own process (so peak RSS and the backend are its own): trains the
 * reference encoder on a backend with a variant and prints JSON {ms, peakRssMb, trainable, loss}.
 *   node --import tsx bench/step_worker.ts <native|wasm|cpu> <full|lora|adalora> <steps> [layers]
 */
import { tf, type Tensor } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { AdamW } from '../src/training/optim.js';
import { getPeftModel, LoraConfig, AdaLoraConfig, type PeftModel } from '../src/tuners/index.js';
import { REFERENCE, buildEncoder, randomBatch, type Batch } from './encoder.js';

const [backend = 'native', variant = 'full', stepsArg = '3', layersArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const shape = { ...REFERENCE, layers: Number(layersArg ?? REFERENCE.layers) };
const ADALORA_TARGETS = [
  'query',
  'key',
  'value',
  'attention.output.dense',
  'intermediate.dense',
  'output.dense',
];

await initBackend(backend);
const base = buildEncoder(shape);
let model: { forward: typeof base.forward; trainableParameters: typeof base.trainableParameters } = base;
let peft: PeftModel | undefined;
if (variant === 'lora') {
  peft = getPeftModel(
    base,
    new LoraConfig({
      r: 8,
      loraAlpha: 16,
      loraDropout: 0.1,
      targetModules: ['query', 'value'],
      taskType: 'SEQ_CLS',
    }),
  );
} else if (variant === 'adalora') {
  // tinit = tfinal = 0, deltaT = 1: every step is a budgeting step (sensitivity update + masking),
  // the most expensive phase of AdaLoRA, as in bench/torch_bench.py.
  const config = new AdaLoraConfig({
    initR: 12,
    targetR: 8,
    tinit: 0,
    tfinal: 0,
    deltaT: 1,
    totalStep: 1000,
    loraAlpha: 12,
    loraDropout: 0.1,
    targetModules: ADALORA_TARGETS,
    taskType: 'SEQ_CLS',
  });
  peft = getPeftModel(base, config);
}
if (peft) model = peft;
const named = model.trainableParameters();
const vars = named.map(([, v]) => v);
const opt = new AdamW(named, { lr: 1e-4 });
const batch: Batch = randomBatch(shape);

function step(i: number): number {
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forward({
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
      labels: batch.labels,
    });
    tf.dispose(out.logits);
    return out.loss as tf.Scalar;
  }, vars);
  opt.step(grads);
  if (variant === 'adalora') {
    const byName = new Map<string, Tensor>(named.map(([n, v]) => [n, grads[v.name]!]));
    peft!.updateAndAllocate(i + 1, byName);
  }
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}

step(0); // warm-up (kernel setup, pool, optimizer slots)
const times: number[] = [];
let loss = 0;
for (let i = 1; i <= steps; i++) {
  const t0 = performance.now();
  loss = step(i);
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const trainable = named.reduce((acc, [, v]) => acc + v.size, 0);
console.log(
  JSON.stringify({
    backend,
    variant,
    ms: times[Math.floor(times.length / 2)],
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    trainable,
    loss,
    tensors: tf.memory().numTensors,
  }),
);
