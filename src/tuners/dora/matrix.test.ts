/**
 * DoRA × model matrix: the shared tuner invariants (src/testing/tuner_matrix.ts) for `useDora: true`
 * on the tiny MLP and the tiny GPT-2 (Conv1D, fanInFanOut) and Llama, and DoRA over a 4-bit base.
 */
import { tf } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import { quantizeModel } from '../../nn/linear4bit.js';
import type { HFConfig } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { TinyMlp } from '../../testing/tiny_mlp.js';
import { registerTunerMatrix } from '../../testing/tuner_matrix.js';
import { LoraConfig } from '../lora/index.js';
import './index.js';

const GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 30,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  n_positions: 16,
};
const LLAMA: HFConfig = {
  model_type: 'llama',
  vocab_size: 30,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const ids = () =>
  tf.tensor2d(
    [
      [1, 5, 7, 2, 9],
      [3, 4, 8, 8, 6],
    ],
    [2, 5],
    'int32',
  );
const lmInputs = () => ({ inputIds: ids(), labels: ids() });
const mlp = () => {
  manualSeed(3);
  return new TinyMlp({ vocab: 12, hidden: 8, inner: 16, classes: 3 }).eval();
};
const mlpInputs = () => ({
  inputIds: tf.tensor2d(
    [
      [1, 5, 7],
      [3, 4, 11],
    ],
    [2, 3],
    'int32',
  ),
  labels: tf.tensor1d([0, 2], 'int32'),
});
const gpt2 = () => {
  manualSeed(7);
  return modelFromConfig(GPT2, { task: 'CAUSAL_LM' });
};
const llama4bit = () => {
  manualSeed(9);
  const m = modelFromConfig(LLAMA, { task: 'CAUSAL_LM' });
  quantizeModel(m, { quantType: 'nf4', doubleQuant: true });
  return m;
};
// DoRA re-scales rows by m/‖W+ΔW‖: merged weights carry one more rounding than LoRA's W + ΔW.
const DORA_MERGE_ATOL = 5e-5;

registerTunerMatrix([
  {
    name: 'dora × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: () =>
      new LoraConfig({ r: 2, loraAlpha: 4, useDora: true, targetModules: ['fc1', 'fc2', 'classifier'] }),
    mergeAtol: DORA_MERGE_ATOL,
  },
  {
    name: 'dora + dropout × gpt2 (Conv1D)',
    makeModel: gpt2,
    makeInputs: lmInputs,
    makeConfig: () =>
      new LoraConfig({
        r: 2,
        loraAlpha: 4,
        loraDropout: 0.1,
        useDora: true,
        targetModules: ['c_attn', 'c_fc'],
      }),
    mergeAtol: DORA_MERGE_ATOL,
  },
  {
    name: 'dora × llama over NF4 (QDoRA)',
    makeModel: llama4bit,
    makeInputs: lmInputs,
    makeConfig: () =>
      new LoraConfig({ r: 2, loraAlpha: 4, useDora: true, targetModules: ['q_proj', 'v_proj', 'down_proj'] }),
    // Merging into 4-bit re-quantises: on this 16-wide model the NF4 rounding (≈0.05 in the logits) is
    // as large as the perturbed adapter's effect (≈0.27), so the shared check cannot separate them; the
    // 4-bit merge is checked on a wider model in tuners/qlora/qlora.test.ts and dora.test.ts.
    noMerge: true,
  },
]);
