/**
 * QLoRA × model matrix: LoRA and AdaLoRA adapters over bases whose linear layers are 4-bit
 * (`quantizeModel`), through the shared tuner invariants (src/testing/tuner_matrix.ts). Merging into a
 * 4-bit base re-quantises, so the shared merge check is skipped here (on these 16-wide models the NF4
 * rounding is as large as the perturbed adapter's effect); quantized.test.ts checks merge on a wider model.
 */
import {
  mlpInputs,
  clsInputs,
  lmInputs,
  tinyMlp,
  tinyBertClassifier,
  tinyGpt2Lm,
} from '../../testing/tiny_models.js';
import { registerTunerMatrix } from '../../testing/tuner_matrix.js';
import { LoraConfig } from '../lora/index.js';
import { AdaLoraConfig } from '../adalora/config.js';
import '../adalora/index.js';
import { quantizeModel } from '../../nn/linear4bit.js';
import './quantized.js';

const mlp4bit = () => {
  const m = tinyMlp();
  quantizeModel(m, { quantType: 'nf4', doubleQuant: true, skipModules: ['classifier'] });
  return m;
};
const gpt2fp4 = () => {
  const m = tinyGpt2Lm();
  quantizeModel(m, { quantType: 'fp4' });
  return m;
};
const bert4bit = () => {
  const m = tinyBertClassifier();
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
