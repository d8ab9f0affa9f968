/**
 * Profiles training steps of the reference encoder kernel by kernel (run with LOWRANK_PROFILE=1):
 *   LOWRANK_PROFILE=1 node --import tsx bench/profile_step.ts [full|lora|adalora] [layers] [steps]
 * Prints ms/step, the 30 costliest kernels (share of the step, calls per step) and the time spent
 * outside kernels (JS: tape, tidy, op dispatch, dropout masks, AdaLoRA bookkeeping).
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { resetKernelProfile } from '../src/tensor/native/profile.js';
import { cpuMs, printProfile } from './profile_report.js';
import { REFERENCE, randomBatch } from './encoder.js';
import { buildVariant, variantStep } from './variants.js';

const variant = process.argv[2] ?? 'full';
const layers = Number(process.argv[3] ?? REFERENCE.layers);
const steps = Number(process.argv[4] ?? 2);
const report = await initBackend(process.env.LOWRANK_BACKEND ?? 'native');
const shape = { ...REFERENCE, layers };
const model = buildVariant(variant, shape);
const batch = randomBatch(shape);
variantStep(model, batch, 1); // warm-up
resetKernelProfile();
const t0 = performance.now();
const cpu0 = cpuMs();
for (let i = 0; i < steps; i++) variantStep(model, batch, i + 2);
const ms = (performance.now() - t0) / steps;
const cpu = (cpuMs() - cpu0) / steps;
console.log(
  `${report.backend} ${variant}: ${layers} layers, ${ms.toFixed(0)} ms/step (cpu ${cpu.toFixed(0)} ms), tensors ${tf.memory().numTensors}`,
);
printProfile(ms, steps);
