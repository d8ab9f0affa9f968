/**
 * Profiles training steps of the reference encoder kernel by kernel (run with LOWRANK_PROFILE=1):
 *   LOWRANK_PROFILE=1 node --import tsx bench/profile_step.ts [full|lora|adalora] [layers] [steps]
 * Prints ms/step, the 30 costliest kernels (share of the step, calls per step) and the time spent
 * outside kernels (JS: tape, tidy, op dispatch, dropout masks, AdaLoRA bookkeeping).
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { kernelProfile, resetKernelProfile } from '../src/tensor/native/profile.js';
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
const cpu0 = process.cpuUsage();
for (let i = 0; i < steps; i++) variantStep(model, batch, i + 2);
const ms = (performance.now() - t0) / steps;
const cpu = process.cpuUsage(cpu0);
// CPU time (all threads) per step: with LOWRANK_THREADS=1 it tracks the work done even while other
// processes share the cores, which stretch the wall-clock times.
const cpuMs = (cpu.user + cpu.system) / 1000 / steps;
console.log(
  `${report.backend} ${variant}: ${layers} layers, ${ms.toFixed(0)} ms/step (cpu ${cpuMs.toFixed(0)} ms), tensors ${tf.memory().numTensors}`,
);
const total = kernelProfile().reduce((a, k) => a + k.ms, 0);
for (const k of kernelProfile().slice(0, 30))
  console.log(
    `${k.kernel.padEnd(process.env.LOWRANK_PROFILE === 'shapes' ? 60 : 24)} ${k.native ? 'native' : 'cpu   '} ${(k.ms / steps).toFixed(1).padStart(8)} ms ${((100 * k.ms) / (ms * steps)).toFixed(1).padStart(5)}% calls ${k.calls / steps}`,
  );
const slowCpu = kernelProfile().filter((k) => !k.native && k.ms / steps > 0.05 * ms);
console.log(
  `kernels total ${(total / steps).toFixed(0)} ms/step of ${ms.toFixed(0)}; cpu-path kernels above 5%: ${slowCpu.map((k) => k.kernel).join(', ') || 'none'}`,
);
