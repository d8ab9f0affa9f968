/**
 * Issue 17's leak check of the native training kernels, in one process (not a test):
 *   node --import tsx --expose-gc bench/leak_native.ts [scenario|kernels] [steps]
 * `scenario`: tests/native_training.test.ts's leak case (tiny BERT classifier, full fine-tuning
 * with AdamW over all parameters, fused attention, fused dropout+add+LayerNorm; 10 warm-up steps,
 * then `steps` measured) printing RSS growth as the test measures it (no forced GC) and after a
 * full GC, plus tensor count and ArrayBuffer bytes. `kernels`: each native training kernel called
 * directly on fixed arrays many times (no tfjs, no JS allocation in the loop): a leak inside a
 * kernel (a buffer never freed) grows RSS linearly here. Prints one JSON line.
 */
import { tf, type Tensor } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadAddon } from '../src/tensor/native/addon.js';
import { BertForSequenceClassification } from '../src/models/bert_classification.js';
import { manualSeed } from '../src/nn/init.js';
import { AdamW } from '../src/training/optim.js';
import { orthPenalty } from '../src/tensor/ops/orth_reg.js';
import { aleaStreams } from '../src/tensor/ops/dropout.js';
import { DROPOUT_BERT_CLS, dropoutBertBatch } from '../src/testing/tiny_models.js';
import { garbageCollector } from '../src/tensor/memory.js';

const mode = process.argv[2] ?? 'scenario';
const steps = Number(process.argv[3] ?? 40);
const gc = garbageCollector() ?? (() => undefined);
const mb = (b: number) => Number((b / 2 ** 20).toFixed(2));

function scenario() {
  manualSeed(3);
  const model = new BertForSequenceClassification(DROPOUT_BERT_CLS);
  model.train();
  const named = model.trainableParameters();
  const opt = new AdamW(named, { lr: 1e-3 });
  const data = dropoutBertBatch();
  const step = () => {
    const { value, grads } = tf.variableGrads(
      () => {
        const out = model.forward(data);
        tf.dispose(out.logits);
        return out.loss as tf.Scalar;
      },
      named.map(([, v]) => v),
    );
    opt.step(grads);
    tf.dispose([value as Tensor, ...Object.values(grads)]);
  };
  for (let i = 0; i < 10; i++) step();
  const t0 = tf.memory().numTensors;
  const raw0 = process.memoryUsage();
  for (let i = 0; i < steps; i++) step();
  const raw1 = process.memoryUsage();
  gc();
  const gc1 = process.memoryUsage();
  for (let i = 0; i < steps; i++) step();
  gc();
  const gc2 = process.memoryUsage();
  return {
    mode,
    steps,
    tensorsGrew: tf.memory().numTensors - t0,
    rssGrowthAsTestMb: mb(raw1.rss - raw0.rss),
    heapGrowthAsTestMb: mb(raw1.heapUsed - raw0.heapUsed),
    rssGrowthNextStepsAfterGcMb: mb(gc2.rss - gc1.rss),
    arrayBuffersGrowthAfterGcMb: mb(gc2.arrayBuffers - gc1.arrayBuffers),
  };
}

function kernels() {
  const addon = loadAddon()!;
  const f = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const [b, t, h, d] = [3, 8, 2, 8];
  const w = h * d;
  const q = f(b * t * w);
  const out = new Float32Array(b * t * w);
  const probs = new Float32Array(b * h * t * t);
  const [dq, dk, dv] = [0, 1, 2].map(() => new Float32Array(b * t * w)) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const ps = [f(64), f(64)];
  const gs = [new Float32Array(64), new Float32Array(64)];
  const slots = Array.from({ length: 7 }, () => [f(64), f(64)]);
  const y = new Float32Array(b * t * w);
  const sum = new Float32Array(b * t * w);
  const rows = new Float32Array(b * t);
  const mask = new Uint8Array(b * t * w);
  const g = f(w);
  const { states: list, chunk } = aleaStreams('5', b * t * w);
  const states = Float64Array.from(list);
  const run = () => {
    addon.attentionForward(q, q, q, null, new Int32Array(4), out, probs, b, t, t, h, d, 0.3);
    addon.attentionBackward(out, q, q, q, probs, dq, dk, dv, b, t, t, h, d, 0.3);
    addon.adamwAll(
      ...(slots as [
        Float32Array[],
        Float32Array[],
        Float32Array[],
        Float32Array[],
        Float32Array[],
        Float32Array[],
        Float32Array[],
      ]),
      1e-3,
      0.9,
      0.999,
      1e-8,
      0.01,
      3,
    );
    addon.orthReg(ps, Int32Array.from([4, 16]), Int32Array.from([16, 4]), Uint8Array.from([1, 0]), gs);
    addon.addNormForward(q, q, g, g, y, sum, rows, rows, mask, b * t, w, 1e-12, 0.9, states, chunk);
    addon.addNormBackward(y, sum, g, rows, rows, mask, dq, dk, g.slice(), null, b * t, w, 0.9);
    addon.dropout(q, y, sum, 0.9, states, chunk);
  };
  for (let i = 0; i < 1000; i++) run();
  gc();
  const r0 = process.memoryUsage().rss;
  for (let i = 0; i < steps; i++) run();
  gc();
  const r1 = process.memoryUsage().rss;
  // the same through the tfjs op (engine, tape), for orth-reg which only AdaLoRA runs in a step
  const mats = [tf.randomNormal([4, 16]), tf.randomNormal([16, 4])];
  const t0 = tf.memory().numTensors;
  for (let i = 0; i < 200; i++)
    tf.tidy(() => {
      tf.grad((m: Tensor) => orthPenalty([m, mats[1]!], ['A', 'B']))(mats[0]!);
    });
  return { mode, calls: steps, rssGrowthMb: mb(r1 - r0), orthTensorsGrew: tf.memory().numTensors - t0 };
}

await initBackend('native');
console.log(JSON.stringify(mode === 'kernels' ? kernels() : scenario()));
