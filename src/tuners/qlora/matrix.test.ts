/**
 * QLoRA × model matrix: LoRA and AdaLoRA adapters over bases whose linear layers are 4-bit
 * (`quantizeModel`), through the shared tuner invariants (src/testing/tuner_matrix.ts). Merging into a
 * 4-bit base re-quantises, so the shared merge check is skipped here (on these 16-wide models the NF4
 * rounding is as large as the perturbed adapter's effect); qlora.test.ts checks merge on a wider model.
 */
import { tf } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import type { HFConfig } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { TinyMlp } from '../../testing/tiny_mlp.js';
import { registerTunerMatrix } from '../../testing/tuner_matrix.js';
import { LoraConfig } from '../lora/index.js';
import { AdaLoraConfig } from '../adalora/config.js';
import '../adalora/index.js';
import { quantizeModel } from './index.js';

const GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 30,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  n_positions: 16,
};
const BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 30,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  max_position_embeddings: 16,
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
const clsInputs = () => ({ inputIds: ids(), labels: tf.tensor1d([1, 2], 'int32') });
const mlp4bit = () => {
  manualSeed(3);
  const m = new TinyMlp({ vocab: 12, hidden: 8, inner: 16, classes: 3 }).eval();
  quantizeModel(m, { quantType: 'nf4', doubleQuant: true, skipModules: ['classifier'] });
  return m;
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
const gpt2fp4 = () => {
  manualSeed(7);
  const m = modelFromConfig(GPT2, { task: 'CAUSAL_LM' });
  quantizeModel(m, { quantType: 'fp4' });
  return m;
};
const bert4bit = () => {
  manualSeed(5);
  const m = modelFromConfig(BERT, { task: 'SEQ_CLS', numLabels: 3 });
  quantizeModel(m, { quantType: 'nf4', doubleQuant: true });
  return m;
};

registerTunerMatrix([
  {
    name: 'qlora (lora × mlp, NF4+DQ)',
    makeModel: mlp4bit,
    makeInputs: mlpInputs,
    makeConfig: () => new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'] }),
    noMerge: true,
  },
  {
    name: 'qlora (lora × gpt2 Conv1D → 4-bit, FP4)',
    makeModel: gpt2fp4,
    makeInputs: lmInputs,
    makeConfig: () => new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['c_attn', 'c_proj', 'c_fc'] }),
    noMerge: true,
  },
  {
    name: 'qlora (adalora × bert SEQ_CLS, NF4+DQ)',
    makeModel: bert4bit,
    makeInputs: clsInputs,
    makeConfig: () =>
      new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, targetModules: ['query', 'value'] }),
    noMerge: true,
  },
]);
