/**
 * Shared fixtures of the AdaLoRA model tests: the tiny Llama of tests/fixtures/models_llama.json,
 * its inputs, the AdaLoRA config used throughout, and small helpers. Test support only.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tf, type Tensor } from '../tensor/tf.js';
import type { ModelInputs, PreTrainedModel } from '../models/base.js';
import { modelFromConfig } from '../models/from_config.js';
import { loadWeights } from '../models/weights.js';
import type { PeftModel } from '../tuners/peft_model.js';
import { AdaLoraConfig } from '../tuners/adalora/config.js';
import type { SVDLinear } from '../tuners/adalora/layer.js';

/** float32 forward vs the float64 plain-torch reference over two tiny layers (as models/parity.test.ts). */
export const LOGIT_ATOL = 1e-4;
/** merged vs unmerged forward: W + Δ rounded once more in f32 and a different summation order, on logits up to ~15 (f32 ulp ≈ 1e-6) after two layers. */
export const MERGE_ATOL = 1e-4;

/** loss + w·R is one more f32 addition: a few ulps relative to the loss. */
export const LOSS_RTOL = 1e-6;

export const fixturePath = (name: string) =>
  fileURLToPath(new URL(`../../tests/fixtures/${name}`, import.meta.url));
export const llamaFx = JSON.parse(readFileSync(fixturePath('models_llama.json'), 'utf8'));

export function tinyLlama(): PreTrainedModel {
  const model = modelFromConfig(llamaFx.config);
  const state = new Map<string, Tensor>(
    Object.entries(llamaFx.weights as Record<string, { shape: number[]; data: number[] }>).map(([k, w]) => [
      k,
      tf.tensor(w.data, w.shape),
    ]),
  );
  loadWeights(model, state);
  state.forEach((t) => t.dispose());
  return model;
}

export function inputs(withLabels: boolean): ModelInputs {
  const c = llamaFx.cases[0];
  const out: ModelInputs = {
    inputIds: tf.tensor2d(c.input_ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(c.attention_mask, undefined, 'int32'),
  };
  if (withLabels) out.labels = tf.tensor2d(c.labels, undefined, 'int32');
  return out;
}
export const disposeInputs = (i: ModelInputs) => Object.values(i).forEach((t) => (t as Tensor).dispose());

export const cfg = (o: Record<string, unknown> = {}) =>
  new AdaLoraConfig({
    initR: 4,
    targetR: 2,
    tinit: 2,
    tfinal: 4,
    deltaT: 2,
    totalStep: 24,
    loraAlpha: 8,
    targetModules: ['q_proj', 'v_proj'],
    taskType: 'CAUSAL_LM',
    ...o,
  });

export const layers = (peft: PeftModel) => peft.base_model.tunerLayers() as [string, SVDLinear][];
