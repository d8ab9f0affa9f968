/**
 * Profiles training steps of the reference encoder kernel by kernel (run with LOWRANK_PROFILE=1):
 *   LOWRANK_PROFILE=1 node --import tsx bench/profile_step.ts [layers] [steps]
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { kernelProfile, resetKernelProfile } from '../src/tensor/native/profile.js';
import { AdamW } from '../src/training/optim.js';
import { REFERENCE, buildEncoder, randomBatch, trainStep } from './encoder.js';

const layers = Number(process.argv[2] ?? REFERENCE.layers);
const steps = Number(process.argv[3] ?? 2);
const report = await initBackend(process.env.LOWRANK_BACKEND ?? 'native');
const shape = { ...REFERENCE, layers };
const model = buildEncoder(shape);
const vars = model.trainableParameters();
const opt = new AdamW(vars, { lr: 1e-4 });
const batch = randomBatch(shape);
trainStep(
  model,
  opt,
  batch,
  vars.map(([, v]) => v),
); // warm-up
resetKernelProfile();
const t0 = performance.now();
for (let i = 0; i < steps; i++)
  trainStep(
    model,
    opt,
    batch,
    vars.map(([, v]) => v),
  );
const ms = (performance.now() - t0) / steps;
console.log(
  `${report.backend}: ${layers} layers, ${ms.toFixed(0)} ms/step, tensors ${tf.memory().numTensors}`,
);
const total = kernelProfile().reduce((a, k) => a + k.ms, 0);
for (const k of kernelProfile().slice(0, 30))
  console.log(
    `${k.kernel.padEnd(24)} ${k.native ? 'native' : 'cpu   '} ${(k.ms / steps).toFixed(1).padStart(8)} ms ${((100 * k.ms) / (ms * steps)).toFixed(1).padStart(5)}% calls ${k.calls / steps}`,
  );
console.log(`kernels total ${(total / steps).toFixed(0)} ms/step of ${ms.toFixed(0)}`);
