/**
 * HyperLoRA cases of the conformance suite: the library's training step on a mixed-condition batch
 * whose condition comes from the collator (`Example.condition` → int32 [B] or float32 [B, dim]
 * `condition`), so the gather of condition embeddings, the hypernetwork and the per-row batched
 * adapters run on the backend under test. Each case reports every step's loss, the first step's
 * gradients, the final hypernetwork weights and the LoRA factors materialised for one condition.
 */
import { tf } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import { modelFromConfig } from '../../models/from_config.js';
import type { HFConfig } from '../../models/base.js';
import {
  HyperLoraConfig,
  HyperLoraModel,
  type HyperLoraConfigOptions,
} from '../../tuners/hyperlora/index.js';
import type { Example } from '../../training/data/dataset.js';
import { readAll } from '../../tensor/read.js';
import { GPT2_64, LLAMA_64 } from '../small_models.js';
import { NO_DROPOUT, STEPS, STEP_TOLS, WEIGHT_TOL, librarySteps } from './training.js';
import type { ConformanceCase, Values } from './types.js';

const HIDDEN = 8;
/**
 * A materialised factor entry is a head's dot product over HIDDEN tanh units (|h| ≤ 1) plus a bias:
 * HIDDEN + 1 head weights, each within WEIGHT_TOL after the steps.
 */
export const MATERIALISED_TOL = { atol: WEIGHT_TOL.atol * (HIDDEN + 1), rtol: 0 };

const GPT2: HFConfig = { ...GPT2_64, ...NO_DROPOUT };
/** Condition vectors of the 'vector' case: condition k is row k. */
const VECTORS = [
  [1, 0, 0.5],
  [0, 1, -1],
  [0.3, -0.2, 0.7],
];

/** Eight causal-LM examples of 5–12 tokens; example i has condition i mod 3 (id or vector). */
function examples(vector: boolean): Example[] {
  return Array.from({ length: 8 }, (_, i) => ({
    inputIds: Array.from({ length: 5 + ((i * 3) % 8) }, (_, j) => 1 + ((i * 17 + j * 7) % 95)),
    label: -1,
    condition: vector ? VECTORS[i % 3]! : i % 3,
  }));
}

interface HyperSpec {
  name: string;
  config: HFConfig;
  hyper: Omit<HyperLoraConfigOptions, 'r' | 'hiddenDim'>;
}

/** STEPS library training steps (collate → forward → grads → clip → AdamW), then condition 1's factors. */
async function hyperSteps(spec: HyperSpec): Promise<Record<string, Values>> {
  manualSeed(4321);
  const base = modelFromConfig(spec.config, { task: 'CAUSAL_LM' });
  const hyper = new HyperLoraModel(base, new HyperLoraConfig({ ...spec.hyper, r: 4, hiddenDim: HIDDEN }));
  // B heads start at zero (a fresh hypernetwork is its base): move them so step 1's gradients reach A
  tf.tidy(() => {
    for (const [n, p] of hyper.hypernet.namedParameters())
      if (/_B\.weight$/.test(n)) p.assign(tf.randomNormal(p.shape, 0, 0.05, 'float32', 17));
  });
  const vector = spec.hyper.conditionType === 'vector';
  const out: Record<string, Values> = {};
  try {
    await librarySteps(hyper, examples(vector), 'causal_lm', out);
    const cond = vector ? tf.tensor2d([VECTORS[1]!]) : 1;
    const { weights } = hyper.materialize(cond);
    try {
      const keys = [...weights.keys()].sort();
      const vals = await readAll(keys.map((k) => weights.get(k)!));
      keys.forEach((k, i) => (out[`materialised ${k}`] = vals[i]!));
    } finally {
      tf.dispose([...weights.values()]);
      if (typeof cond !== 'number') cond.dispose();
    }
    return out;
  } finally {
    hyper.dispose();
  }
}

function hyperCase(spec: HyperSpec): ConformanceCase {
  return {
    name: spec.name,
    group: 'training',
    tol: { ...STEP_TOLS, materialised: MATERIALISED_TOL },
    run: () => hyperSteps(spec),
  };
}

/** The HyperLoRA training cases. */
export function hyperloraCases(): ConformanceCase[] {
  return [
    hyperCase({
      name: `Llama + HyperLoRA (condition ids from the collator, mixed batch, FiLM), ${STEPS} steps`,
      config: LLAMA_64,
      hyper: { targetModules: ['q_proj', 'v_proj', 'down_proj'], numConditions: 3, conditioning: 'film' },
    }),
    hyperCase({
      name: `GPT-2 + HyperLoRA (condition vectors from the collator, Conv1D, layer 1 only), ${STEPS} steps`,
      config: GPT2,
      hyper: {
        targetModules: ['c_attn', 'attn.c_proj'], // the MLP's c_proj has another shape
        conditionType: 'vector',
        conditionDim: 3,
        layersToTransform: [1],
      },
    }),
  ];
}
