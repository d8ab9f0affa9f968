/**
 * By-hand check (issue 18, not a test): an adapter trained on an NF4 model (two LoRA r16 q/v steps at
 * 1 × 256, checkpointing + chunked loss), saved, then loaded with `PeftModel.fromPretrained` over the
 * f32 model holding the dequantised 4-bit weights, gives the NF4 model's logits (PEFT itself is not
 * installable here). Prints the largest logit difference.
 *   node --import tsx --expose-gc bench/memory_adapter.ts /tmp/lowrank-mem/1.1B /tmp/adapter-1.1B
 */
import fs from 'node:fs';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { getPeftModel, LoraConfig, PeftModel } from '../src/tuners/index.js';
import { AdamW } from '../src/training/optim.js';
import { Linear4bit } from '../src/nn/linear4bit.js';
import type { Linear } from '../src/nn/layers.js';
import { setChunkedLoss } from '../src/models/chunked_head.js';
import { setGradientCheckpointing } from '../src/nn/checkpoint.js';
import { releaseMemory } from '../src/tensor/memory.js';
const dir = process.argv[2]!;
const out = process.argv[3]!;
await initBackend('native');
const t0 = performance.now();
const q = await loadModel(dir, { quantize: 'nf4', doubleQuant: true });
const peft = getPeftModel(
  q,
  new LoraConfig({ r: 16, loraAlpha: 32, targetModules: ['q_proj', 'v_proj'], taskType: 'CAUSAL_LM' }),
);
peft.train();
setChunkedLoss(peft, true);
setGradientCheckpointing(peft, true);
const named = peft.trainableParameters();
const opt = new AdamW(named, { lr: 1e-3 });
const vocab = q.config.vocab_size as number;
const ids = tf.tensor2d(
  Int32Array.from({ length: 256 }, (_, i) => (i * 7919 + 13) % vocab),
  [1, 256],
  'int32',
);
for (let i = 0; i < 2; i++) {
  const { value, grads } = tf.variableGrads(
    () => peft.forward({ inputIds: ids, labels: ids }).loss as tf.Scalar,
    named.map(([, v]) => v),
  );
  opt.step(grads);
  console.log('step', i, (await value.data())[0]);
  tf.dispose([value, ...Object.values(grads)]);
}
peft.eval();
fs.rmSync(out, { recursive: true, force: true });
await peft.savePretrained(out);
const probe = ids.slice([0, 0], [1, 32]);
const want = tf.tidy(() => peft.forward({ inputIds: probe }).logits);
const dense = new Map<string, Float32Array>();
for (const [p, m] of q.namedModules())
  if (m instanceof Linear4bit) {
    const w = m.denseWeight();
    dense.set(
      p.replace(/^base_model\.model\./, '').replace(/\.base_layer$/, ''),
      (await w.data()) as Float32Array,
    );
    w.dispose();
  }
opt.dispose();
peft.dispose();
releaseMemory();
const f32 = await loadModel(dir);
for (const [p, v] of dense) {
  const l = f32.getSubmodule(p) as Linear;
  const t = tf.tensor(v, [l.outFeatures, l.inFeatures]);
  l.setDenseWeight(t);
  t.dispose();
}
dense.clear();
const again = await PeftModel.fromPretrained(f32, out);
const got = tf.tidy(() => again.forward({ inputIds: probe }).logits);
const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(want, got))).dataSync()[0]!);
const scale = tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!);
const loraB = again.trainableParameters().length;
console.log(
  JSON.stringify({
    maxAbsDiff: diff,
    maxAbsLogit: scale,
    rel: diff / scale,
    seconds: (performance.now() - t0) / 1000,
    adapterFiles: fs.readdirSync(out),
    loraTensors: loraB,
  }),
);
