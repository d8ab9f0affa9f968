/**
 * QLoRA × model matrix: LoRA and AdaLoRA adapters over bases whose linear layers are 4-bit
 * (`quantizeModel`), through the shared tuner invariants (src/testing/tuner_matrix.ts). Merging into a
 * 4-bit base re-quantises, so the shared merge check is skipped here (on these 16-wide models the NF4
 * rounding is as large as the perturbed adapter's effect); quantized.test.ts checks merge on a wider model.
 */
import { TINY, type TinySubject } from '../../testing/tiny_models.js';
import { registerTunerMatrix } from '../../testing/tuner_matrix.js';
import { LoraConfig } from '../lora/index.js';
import { AdaLoraConfig } from '../adalora/config.js';
import '../adalora/index.js';
import { quantizeModel, type QuantizeModelOptions } from '../../nn/linear4bit.js';
import './quantized.js';

/** The subject with its base's linear layers quantised to 4 bits. */
const fourBit = (s: TinySubject, opts: QuantizeModelOptions): TinySubject => ({
  makeModel: () => {
    const m = s.makeModel();
    quantizeModel(m, opts);
    return m;
  },
  makeInputs: s.makeInputs,
});

registerTunerMatrix([
  {
    name: 'qlora (lora × mlp, NF4+DQ)',
    ...fourBit(TINY.mlp, { quantType: 'nf4', doubleQuant: true, skipModules: ['classifier'] }),
    makeConfig: () => new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'] }),
    noMerge: true,
  },
  {
    name: 'qlora (lora × gpt2 Conv1D → 4-bit, FP4)',
    ...fourBit(TINY.gpt2, { quantType: 'fp4' }),
    makeConfig: () => new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['c_attn', 'c_proj', 'c_fc'] }),
    noMerge: true,
  },
  {
    name: 'qlora (adalora × bert SEQ_CLS, NF4+DQ)',
    ...fourBit(TINY.bertCls, { quantType: 'nf4', doubleQuant: true }),
    makeConfig: () =>
      new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, targetModules: ['query', 'value'] }),
    noMerge: true,
  },
]);
