/**
 * Tuner × model matrix on the decoders of issue 15 (Qwen2, Mistral, Gemma, Gemma 2, Phi-3): LoRA
 * all-linear, DoRA, AdaLoRA and QLoRA (LoRA over NF4) through the shared invariants of
 * src/testing/tuner_matrix.ts (identity at init, merged = unmerged, unmerge restores, save → load →
 * save byte-identical, one step moves only adapter weights, no leaks). The tiny configs use a window of
 * 3 over 5-token inputs, so Mistral's and Gemma 2's windows and Gemma 2's soft-capping are on.
 */
import { manualSeed } from '../nn/init.js';
import { quantizeModel } from '../nn/linear4bit.js';
import { lmInputs, clsInputs } from '../testing/tiny_models.js';
import { registerTunerMatrix, type MatrixCase } from '../testing/tuner_matrix.js';
import { LoraConfig } from '../tuners/lora/index.js';
import { AdaLoraConfig } from '../tuners/adalora/index.js';
import '../tuners/lora/dora.js';
import type { PreTrainedModel, TaskType } from './base.js';
import { TINY_DEBERTA, TINY_DECODERS } from '../testing/tiny_decoders.js';
import { modelFromConfig } from './from_config.js';

// DoRA re-scales rows by m/‖W+ΔW‖: merged weights carry one more rounding than LoRA's W + ΔW.
const DORA_MERGE_ATOL = 5e-5;

const make =
  (type: string, task: TaskType, quantize = false) =>
  (): PreTrainedModel => {
    manualSeed(11);
    const m = modelFromConfig(TINY_DECODERS[type]!, task === 'SEQ_CLS' ? { task, numLabels: 3 } : { task });
    m.eval();
    if (quantize) quantizeModel(m, { quantType: 'nf4', doubleQuant: true });
    return m;
  };

const cases: MatrixCase[] = [];
for (const type of Object.keys(TINY_DECODERS)) {
  const attnTargets = type === 'phi3' ? ['qkv_proj', 'o_proj'] : ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
  const mlpTargets = type === 'phi3' ? ['gate_up_proj', 'down_proj'] : ['gate_proj', 'up_proj', 'down_proj'];
  cases.push(
    {
      name: `lora all-linear × ${type}`,
      makeModel: make(type, 'CAUSAL_LM'),
      makeInputs: lmInputs,
      makeConfig: () =>
        new LoraConfig({ r: 2, loraAlpha: 4, targetModules: 'all-linear', taskType: 'CAUSAL_LM' }),
    },
    {
      name: `lora × ${type} SEQ_CLS (score in modules_to_save)`,
      makeModel: make(type, 'SEQ_CLS'),
      makeInputs: clsInputs,
      makeConfig: () => new LoraConfig({ r: 2, targetModules: attnTargets, taskType: 'SEQ_CLS' }),
    },
    {
      name: `dora × ${type}`,
      makeModel: make(type, 'CAUSAL_LM'),
      makeInputs: lmInputs,
      makeConfig: () =>
        new LoraConfig({ r: 2, loraAlpha: 4, useDora: true, targetModules: [...attnTargets, ...mlpTargets] }),
      mergeAtol: DORA_MERGE_ATOL,
    },
    {
      name: `adalora × ${type}`,
      makeModel: make(type, 'CAUSAL_LM'),
      makeInputs: lmInputs,
      makeConfig: () =>
        new AdaLoraConfig({
          initR: 4,
          targetR: 2,
          totalStep: 10,
          targetModules: [...attnTargets, ...mlpTargets],
        }),
    },
    {
      name: `qlora (lora × ${type} over NF4+DQ)`,
      makeModel: make(type, 'CAUSAL_LM', true),
      makeInputs: lmInputs,
      makeConfig: () =>
        new LoraConfig({ r: 2, loraAlpha: 4, targetModules: [...attnTargets, ...mlpTargets] }),
      // merging into 4-bit re-quantises; the 4-bit merge is checked on a wider model in
      // tuners/base/quantized.test.ts
      noMerge: true,
    },
  );
}

const deberta =
  (quantize = false) =>
  (): PreTrainedModel => {
    manualSeed(13);
    const m = modelFromConfig(TINY_DEBERTA).eval();
    if (quantize) quantizeModel(m, { quantType: 'nf4', doubleQuant: true, skipModules: ['classifier'] });
    return m;
  };
// q/k adapters also act on the relative-position projections (share_att_key)
const debertaTargets = ['query_proj', 'key_proj', 'value_proj', 'dense'];
cases.push(
  {
    name: 'lora all-linear × deberta-v2 SEQ_CLS (pooler.dense adapted, classifier saved)',
    makeModel: deberta(),
    makeInputs: clsInputs,
    makeConfig: () =>
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: 'all-linear', taskType: 'SEQ_CLS' }),
  },
  {
    name: 'dora × deberta-v2 SEQ_CLS',
    makeModel: deberta(),
    makeInputs: clsInputs,
    makeConfig: () =>
      new LoraConfig({ r: 2, useDora: true, targetModules: debertaTargets, taskType: 'SEQ_CLS' }),
    mergeAtol: DORA_MERGE_ATOL,
  },
  {
    name: 'adalora × deberta-v2 SEQ_CLS (default targets)',
    makeModel: deberta(),
    makeInputs: clsInputs,
    makeConfig: () => new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, taskType: 'SEQ_CLS' }),
  },
  {
    name: 'qlora (lora × deberta-v2 over NF4+DQ)',
    makeModel: deberta(true),
    makeInputs: clsInputs,
    makeConfig: () => new LoraConfig({ r: 2, targetModules: debertaTargets, taskType: 'SEQ_CLS' }),
    noMerge: true,
  },
);

registerTunerMatrix(cases);
