/**
 * AdaLoRA × model matrix (issue 4): the shared invariants of `src/testing/tuner_matrix.ts` for AdaLoRA
 * on the tiny MLP (with modulesToSave) and the project's tiny BERT (SEQ_CLS, default targets),
 * GPT-2 (Conv1D, fanInFanOut) and Llama. Rank-pattern trimming on save is covered in model.test.ts
 * (it needs pruned triplets to be zero, which the matrix's random perturbation does not keep).
 */
import {
  mlpInputs,
  clsInputs,
  lmInputs,
  tinyMlp,
  tinyBertClassifier,
  tinyGpt2Lm,
  tinyLlamaLm,
} from '../../testing/tiny_models.js';
import { registerTunerMatrix, type MatrixCase } from '../../testing/tuner_matrix.js';
import { AdaLoraConfig, type AdaLoraConfigOptions } from './index.js';

const mlp = tinyMlp;
const bertCls = tinyBertClassifier;
const gpt2 = tinyGpt2Lm;
const llama = () => tinyLlamaLm({ tieWordEmbeddings: true });

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
    makeInputs: clsInputs,
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
