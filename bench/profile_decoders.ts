/**
 * Profiles LoRA training steps of a GPT-2 and a Llama decoder (issue 2's rule: no kernel left on
 * a slow JS path may cost more than 5% of a step), kernel by kernel with LOWRANK_PROFILE=1:
 *   LOWRANK_PROFILE=1 node --import tsx bench/profile_decoders.ts [gpt2|llama] [steps]
 * Shapes follow the reference encoder (hidden 384, 6 heads, seq 128, batch 8; 4 layers, vocab
 * 2048): big enough that kernels, not dispatch, dominate — bench/profile_tiny.ts covers the
 * dispatch-bound stories260K workload. LoRA r=8 on every linear layer of the block.
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { resetKernelProfile } from '../src/tensor/native/profile.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { manualSeed } from '../src/nn/init.js';
import { getPeftModel, LoraConfig } from '../src/tuners/index.js';
import { AdamW } from '../src/training/optim.js';
import { Rng } from '../src/util/rng.js';
import { cpuMs, printProfile } from './profile_report.js';

const arch = process.argv[2] ?? 'gpt2';
const steps = Number(process.argv[3] ?? 2);
const [BATCH, SEQ, VOCAB] = [8, 128, 2048];
const CONFIGS: Record<string, { config: Record<string, unknown>; targets: string[] }> = {
  gpt2: {
    config: { model_type: 'gpt2', vocab_size: VOCAB, n_embd: 384, n_layer: 4, n_head: 6, n_positions: SEQ },
    targets: ['c_attn', 'c_proj', 'c_fc'],
  },
  llama: {
    config: {
      model_type: 'llama',
      vocab_size: VOCAB,
      hidden_size: 384,
      intermediate_size: 1024,
      num_hidden_layers: 4,
      num_attention_heads: 6,
      num_key_value_heads: 2,
      max_position_embeddings: SEQ,
    },
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
};
const spec = CONFIGS[arch];
if (!spec) throw new Error(`bench: arch must be gpt2 or llama (got ${arch})`);

const report = await initBackend(process.env.LOWRANK_BACKEND ?? 'native');
manualSeed(0);
const base = modelFromConfig(spec.config, { task: 'CAUSAL_LM' });
const model = getPeftModel(
  base,
  new LoraConfig({
    r: 8,
    loraAlpha: 16,
    loraDropout: 0.1,
    targetModules: spec.targets,
    taskType: 'CAUSAL_LM',
  }),
);
model.train();
const named = model.trainableParameters();
const vars = named.map(([, v]) => v);
const opt = new AdamW(named, { lr: 1e-4 });
const rng = new Rng(1);
const ids = tf.tensor2d(
  Int32Array.from({ length: BATCH * SEQ }, () => rng.int(VOCAB)),
  [BATCH, SEQ],
  'int32',
);

function step(): void {
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forward({ inputIds: ids, labels: ids });
    tf.dispose(out.logits);
    return out.loss as tf.Scalar;
  }, vars);
  opt.step(grads);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
}

step(); // warm-up
resetKernelProfile();
const [t0, c0] = [performance.now(), cpuMs()];
for (let i = 0; i < steps; i++) step();
const ms = (performance.now() - t0) / steps;
console.log(
  `${report.backend} ${arch} LoRA: ${ms.toFixed(0)} ms/step (cpu ${((cpuMs() - c0) / steps).toFixed(0)} ms), tensors ${tf.memory().numTensors}`,
);
printProfile(ms, steps);
