/**
 * LoRA × model matrix (issue 4): the shared invariants of `src/testing/tuner_matrix.ts` for LoRA
 * configurations on the tiny MLP and the project's tiny BERT, GPT-2 (Conv1D, fanInFanOut) and Llama.
 */
import { tf } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import type { HFConfig } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { TinyMlp } from '../../testing/tiny_mlp.js';
import { registerTunerMatrix, type MatrixCase } from '../../testing/tuner_matrix.js';
import { LoraConfig, type LoraConfigOptions } from './index.js';

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
const clsInputs = () => ({ inputIds: ids(), labels: tf.tensor1d([1, 2], 'int32') });
const gpt2 = () => {
  manualSeed(7);
  return modelFromConfig(GPT2, { task: 'CAUSAL_LM' });
};
const llama = () => {
  manualSeed(9);
  return modelFromConfig(LLAMA, { task: 'CAUSAL_LM' });
};
const lmInputs = () => ({ inputIds: ids(), labels: ids() });

const lora = (o: LoraConfigOptions) => () => new LoraConfig(o);

const cases: MatrixCase[] = [
  {
    name: 'lora × mlp (linear + embedding + modulesToSave)',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({
      r: 2,
      loraAlpha: 4,
      targetModules: ['fc1', 'fc2', 'embed'],
      modulesToSave: ['classifier'],
    }),
  },
  {
    name: 'lora rslora+patterns+dropout × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({
      r: 4,
      loraAlpha: 8,
      useRslora: true,
      loraDropout: 0.2,
      targetModules: 'fc[12]',
      rankPattern: { fc2: 2 },
      alphaPattern: { fc1: 3 },
    }),
  },
  {
    name: 'lora init=false × mlp',
    freshIsIdentity: false,
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 2, initLoraWeights: false, targetModules: ['fc1'] }),
  },
  {
    name: 'lora loraBias × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 2, loraBias: true, targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora gaussian × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 2, initLoraWeights: 'gaussian', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora pissa × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 3, loraAlpha: 6, initLoraWeights: 'pissa', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora olora × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 3, initLoraWeights: 'olora', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora bias=lora_only × mlp',
    makeModel: mlp,
    makeInputs: mlpInputs,
    makeConfig: lora({ r: 2, bias: 'lora_only', targetModules: ['fc1'] }),
    isAdapterParam: (n) => /\.lora_|base_layer\.bias$/.test(n),
  },
  {
    name: 'lora default targets × bert SEQ_CLS',
    makeModel: bertCls,
    makeInputs: clsInputs,
    makeConfig: lora({ r: 2, loraAlpha: 4, taskType: 'SEQ_CLS' }),
  },
  {
    name: 'lora all-linear × gpt2 (Conv1D)',
    makeModel: gpt2,
    makeInputs: lmInputs,
    makeConfig: lora({ r: 2, targetModules: 'all-linear', taskType: 'CAUSAL_LM' }),
  },
  {
    name: 'lora layersToTransform × llama',
    makeModel: llama,
    makeInputs: lmInputs,
    makeConfig: lora({
      r: 2,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
      layersToTransform: [1],
      taskType: 'CAUSAL_LM',
    }),
  },
  {
    name: 'lora bias=all × bert SEQ_CLS',
    makeModel: bertCls,
    makeInputs: clsInputs,
    makeConfig: lora({ r: 2, bias: 'all', targetModules: ['query', 'key', 'dense'], taskType: 'SEQ_CLS' }),
    isAdapterParam: (n) => /\.lora_|\.modules_to_save\.|\.bias$/.test(n),
  },
];

registerTunerMatrix(cases);
