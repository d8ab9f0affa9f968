/**
 * Profiles Trainer steps of stories260K (a tiny Llama) with LoRA or AdaLoRA on all linear layers:
 * the experiments' workload, where per-kernel overhead rather than FLOPs sets the step time.
 *   LOWRANK_PROFILE=1 node --import tsx bench/profile_tiny.ts [lora|adalora] [steps]
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { resetKernelProfile } from '../src/tensor/native/profile.js';
import { cpuMs, printProfile } from './profile_report.js';
import { loadModel } from '../src/models/load.js';
import { getPeftModel } from '../src/index.js';
import { LoraConfig } from '../src/tuners/lora/config.js';
import { AdaLoraConfig } from '../src/tuners/adalora/config.js';
import { Trainer } from '../src/training/trainer.js';
import type { TrainableModel } from '../src/training/types.js';

const method = process.argv[2] ?? 'lora';
const steps = Number(process.argv[3] ?? 20);
const model = process.env.TINY_MODEL ?? '../shared/data/models/stories260K/stories260K.bin';
const report = await initBackend(process.env.LOWRANK_BACKEND ?? 'auto');
const base = await loadModel(model, { task: 'CAUSAL_LM', seed: 0 });
const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const cfg =
  method === 'adalora'
    ? new AdaLoraConfig({
        initR: 3,
        targetR: 2,
        tinit: 2,
        tfinal: 2,
        deltaT: 1,
        totalStep: 2 * steps + 10,
        targetModules: targets,
        taskType: 'CAUSAL_LM',
      })
    : new LoraConfig({ r: 2, loraAlpha: 4, targetModules: targets, taskType: 'CAUSAL_LM' });
const peft = getPeftModel(base, cfg);
let seed = 1;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const train = Array.from({ length: 512 }, () => ({
  inputIds: Array.from({ length: 64 }, () => Math.floor(rnd() * 512)),
  label: -1,
}));
const run = async (n: number) => {
  const t = new Trainer(peft as unknown as TrainableModel, {
    task: 'causal_lm',
    train,
    padTokenId: 0,
    lr: 1e-3,
    maxSteps: n,
    batchSize: 8,
    seed: 0,
    maxGradNorm: 1,
  });
  const t0 = performance.now();
  await t.train();
  const ms = (performance.now() - t0) / n;
  t.dispose(); // its AdamW slots; AdaLoRA's allocator state stays with the model (as in PEFT)
  return ms;
};
await run(2); // warm-up
resetKernelProfile();
const cpu0 = cpuMs();
const ms = await run(steps);
const cpu = (cpuMs() - cpu0) / steps;
console.log(
  `${report.backend} ${method}: ${ms.toFixed(1)} ms/step (cpu ${cpu.toFixed(1)} ms), tensors ${tf.memory().numTensors}`,
);
printProfile(ms, steps, 25);
const pool = (tf.backend() as unknown as { pool?: { stats(): unknown } }).pool;
if (pool) console.log('pool', JSON.stringify(pool.stats()));
