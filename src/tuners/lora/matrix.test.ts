/**
 * LoRA × model matrix (issue 4): the shared invariants of `src/testing/tuner_matrix.ts` for LoRA
 * configurations on the tiny MLP and the project's tiny BERT, GPT-2 (Conv1D, fanInFanOut) and Llama.
 */
import { TINY } from '../../testing/tiny_models.js';
import { registerTunerMatrix, type MatrixCase } from '../../testing/tuner_matrix.js';
import { LoraConfig, type LoraConfigOptions } from './index.js';

const lora = (o: LoraConfigOptions) => () => new LoraConfig(o);

const cases: MatrixCase[] = [
  {
    name: 'lora × mlp (linear + embedding + modulesToSave)',
    ...TINY.mlp,
    makeConfig: lora({
      r: 2,
      loraAlpha: 4,
      targetModules: ['fc1', 'fc2', 'embed'],
      modulesToSave: ['classifier'],
    }),
  },
  {
    name: 'lora rslora+patterns+dropout × mlp',
    ...TINY.mlp,
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
    ...TINY.mlp,
    makeConfig: lora({ r: 2, initLoraWeights: false, targetModules: ['fc1'] }),
  },
  {
    name: 'lora loraBias × mlp',
    ...TINY.mlp,
    makeConfig: lora({ r: 2, loraBias: true, targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora gaussian × mlp',
    ...TINY.mlp,
    makeConfig: lora({ r: 2, initLoraWeights: 'gaussian', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora pissa × mlp',
    ...TINY.mlp,
    makeConfig: lora({ r: 3, loraAlpha: 6, initLoraWeights: 'pissa', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora olora × mlp',
    ...TINY.mlp,
    makeConfig: lora({ r: 3, initLoraWeights: 'olora', targetModules: ['fc1', 'fc2'] }),
  },
  {
    name: 'lora bias=lora_only × mlp',
    ...TINY.mlp,
    makeConfig: lora({ r: 2, bias: 'lora_only', targetModules: ['fc1'] }),
    isAdapterParam: (n) => /\.lora_|base_layer\.bias$/.test(n),
  },
  {
    name: 'lora default targets × bert SEQ_CLS',
    ...TINY.bertCls,
    makeConfig: lora({ r: 2, loraAlpha: 4, taskType: 'SEQ_CLS' }),
  },
  {
    name: 'lora all-linear × gpt2 (Conv1D)',
    ...TINY.gpt2,
    makeConfig: lora({ r: 2, targetModules: 'all-linear', taskType: 'CAUSAL_LM' }),
  },
  {
    name: 'lora layersToTransform × llama',
    ...TINY.llamaTied,
    makeConfig: lora({
      r: 2,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
      layersToTransform: [1],
      taskType: 'CAUSAL_LM',
    }),
  },
  {
    name: 'lora bias=all × bert SEQ_CLS',
    ...TINY.bertCls,
    makeConfig: lora({ r: 2, bias: 'all', targetModules: ['query', 'key', 'dense'], taskType: 'SEQ_CLS' }),
    isAdapterParam: (n) => /\.lora_|\.modules_to_save\.|\.bias$/.test(n),
  },
];

registerTunerMatrix(cases);
