/**
 * AdaLoRA × model matrix (issue 4): the shared invariants of `src/testing/tuner_matrix.ts` for AdaLoRA
 * on the tiny MLP (with modulesToSave) and the project's tiny BERT (SEQ_CLS, default targets),
 * GPT-2 (Conv1D, fanInFanOut) and Llama. Rank-pattern trimming on save is covered in model.test.ts
 * (it needs pruned triplets to be zero, which the matrix's random perturbation does not keep).
 */
import { tf } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import type { HFConfig } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { TinyMlp } from '../../testing/tiny_mlp.js';
import { registerTunerMatrix, type MatrixCase } from '../../testing/tuner_matrix.js';
import { AdaLoraConfig, type AdaLoraConfigOptions } from './index.js';

const BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 30,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  max_position_embeddings: 16,
};
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
  tie_word_embeddings: true,
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
const bertCls = () => {
  manualSeed(5);
  return modelFromConfig(BERT, { task: 'SEQ_CLS', numLabels: 3 });
};
const gpt2 = () => {
  manualSeed(7);
  return modelFromConfig(GPT2, { task: 'CAUSAL_LM' });
};
const llama = () => {
  manualSeed(9);
  return modelFromConfig(LLAMA, { task: 'CAUSAL_LM' });
};
const lmInputs = () => ({ inputIds: ids(), labels: ids() });

const ada = (o: AdaLoraConfigOptions) => () =>
  new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, ...o });

const cases: MatrixCase[] = [
  {
    name: 'adalora × mlp (linear + modulesToSave)',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: ada({ loraAlpha: 4, targetModules: ['fc1', 'fc2'], modulesToSave: ['classifier'] }),
  },
  {
    name: 'adalora dropout + initLoraWeights=false × mlp',
    freshIsIdentity: false,
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: ada({
      initR: 3,
      targetR: 1,
      loraDropout: 0.2,
      initLoraWeights: false,
      targetModules: 'fc[12]',
    }),
  },
  {
    name: 'adalora default targets × bert SEQ_CLS',
    makeModel: bertCls,
    makeInputs: () => ({ inputIds: ids(), labels: tf.tensor1d([1, 2], 'int32') }),
    makeConfig: ada({ taskType: 'SEQ_CLS' }),
  },
  {
    name: 'adalora default targets × gpt2 (Conv1D)',
    makeModel: gpt2,
    makeInputs: lmInputs,
    makeConfig: ada({ taskType: 'CAUSAL_LM' }),
  },
  {
    name: 'adalora q/v/down × llama',
    makeModel: llama,
    makeInputs: lmInputs,
    makeConfig: ada({ targetModules: ['q_proj', 'v_proj', 'down_proj'], taskType: 'CAUSAL_LM' }),
  },
];

registerTunerMatrix(cases);
